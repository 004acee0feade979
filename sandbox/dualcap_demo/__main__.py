"""`python -m dualcap_demo`: the same as `dualcap-demo`."""

import sys

from dualcap_demo.cli import main

sys.exit(main())
