"""Data: transforms, the annotation checker, few-shot splits, the benchmark
dataset settings and the synthetic data (``synthetic/``)."""
from .benchmark_settings import BenchmarkError, apply_benchmark
from .transforms import ClassSubsetPrompt

__all__ = ['BenchmarkError', 'apply_benchmark', 'ClassSubsetPrompt']
