"""``python -m afterparty`` runs the command line."""

from afterparty.cli import main

main()
