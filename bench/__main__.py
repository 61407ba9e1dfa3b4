"""``python -m bench [ledger options]`` (the ledger benchmark) or ``python -m bench reports [...]``."""

import sys

if len(sys.argv) > 1 and sys.argv[1] == "reports":
    from bench.reports import main as reports_main

    reports_main(sys.argv[2:])
else:
    from bench.ledger import main

    main()
