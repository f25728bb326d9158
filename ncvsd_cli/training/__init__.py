"""ncvsd_cli.training"""
