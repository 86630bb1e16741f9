import sys

from edge.cli import main

sys.exit(main(["train"] + sys.argv[1:]))
