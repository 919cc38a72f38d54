import sys

from spool.cli import main

sys.exit(main())
