"""ncvsd: image inverse problems with generative denoisers distilled by NCVSD (Peng et al., ICML 2025).

Importing this package is cheap: torch and the networks load only when a submodule that needs them is imported.
"""

__version__ = "0.2.0.dev0"  # (PEP 440) what main builds since 0.1.0: CHANGELOG's [Unreleased]
