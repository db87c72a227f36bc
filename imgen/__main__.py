"""`python -m imgen` runs the command-line interface."""

from imgen.cli import main

if __name__ == "__main__":
    main()
