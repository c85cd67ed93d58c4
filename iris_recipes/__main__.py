from iris_recipes.cli import main

raise SystemExit(main())
