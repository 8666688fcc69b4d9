from provisiond.cli.app import main

main()
