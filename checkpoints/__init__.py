"""Shipped weights (installed as the package `ncvsd_checkpoints`); see manifest.yaml."""
