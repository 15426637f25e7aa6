from blt.cli.main import main

raise SystemExit(main())
