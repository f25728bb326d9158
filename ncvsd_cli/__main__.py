"""`python -m ncvsd_cli` runs the `ncvsd` command."""

from ncvsd_cli.cli import main

if __name__ == "__main__":
    main()
