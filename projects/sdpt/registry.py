"""Registry of prompt-tuning methods (one module each)."""
from mmengine.registry import Registry

PROMPT_METHODS = Registry('prompt tuning method', locations=['projects.sdpt'])
