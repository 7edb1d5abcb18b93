from intentd.cli import main

main()
