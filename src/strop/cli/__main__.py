from strop.cli import main

main()
