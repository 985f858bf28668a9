"""Figures: every figure is written as PDF and PNG."""
