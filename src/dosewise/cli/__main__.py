from dosewise.cli.main import main

main()
