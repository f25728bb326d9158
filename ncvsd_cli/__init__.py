"""ncvsd: image inverse problems with generative denoisers distilled by NCVSD (Peng et al., ICML 2025).

Importing this package is cheap: torch and the networks load only when a submodule that needs them is imported.
"""

__version__ = "0.1.0"
