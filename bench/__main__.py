from bench.ledger import main

main()
