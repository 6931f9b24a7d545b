from iwork_mc.cli import main

main()
