"""`python -m shipit` (used under `accelerate launch -m shipit ...`)."""

from shipit.cli import main

main()
