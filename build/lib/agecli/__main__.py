from agecli.cli import main

main()
