import sys

from usemabench.cli import main

sys.exit(main())
