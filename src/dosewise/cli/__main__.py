from dosewise.cli import main

main()
