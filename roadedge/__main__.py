import sys

from roadedge.cli import main

sys.exit(main())
