from soak._run import main

raise SystemExit(main())
