from harborops.cli import main

main()
