from feedback_mta.cli import main

main()
