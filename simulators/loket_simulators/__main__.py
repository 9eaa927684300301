from loket_simulators.main import main

main()
