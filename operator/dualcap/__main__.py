import sys

from dualcap.cli import main

sys.exit(main())
