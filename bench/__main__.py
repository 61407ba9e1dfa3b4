"""``python -m bench [ledger options]`` (the ledger benchmark) or ``python -m bench <name> [options]``
with a name of: ledger, clearing, reports, floor."""

import sys

if len(sys.argv) > 1 and sys.argv[1] == "clearing":
    from bench.clearing import main as clearing

    clearing(sys.argv[2:])
elif len(sys.argv) > 1 and sys.argv[1] == "floor":
    from bench.floor import main as floor_main

    floor_main(sys.argv[2:])
elif len(sys.argv) > 1 and sys.argv[1] == "reports":
    from bench.reports import main as reports_main

    reports_main(sys.argv[2:])
else:
    if len(sys.argv) > 1 and sys.argv[1] == "ledger":
        del sys.argv[1]
    from bench.ledger import main

    main()
