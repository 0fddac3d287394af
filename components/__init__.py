"""Pulumi components for harbor-platform: one ComponentResource per module."""
