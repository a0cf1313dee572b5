"""Evaluation reports and the statistics shared by every experiment."""
