"""Losses and training loops."""
