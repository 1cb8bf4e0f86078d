from flowlink.cli import main

raise SystemExit(main())
