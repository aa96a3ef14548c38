"""`python -m studio COMMAND`: the studio commands without building the web app first.

The same commands as `flask --app wsgi studio COMMAND`, from the same code (studio/cli.py): a command that works on
files imports only what its operation needs, where `flask` builds the whole web app before any command runs.
"""

from studio.cli import studio_cli

if __name__ == "__main__":
    studio_cli.main(prog_name="python -m studio")
