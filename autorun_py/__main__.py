from autorun_py.cli import main

main()
