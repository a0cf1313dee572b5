"""Data the project draws itself, offline: the demo assets (tiny BERT, the
shapes set, random base weights) and the synthetic grounding corpus."""
