from hotmode.cli import main

raise SystemExit(main())
