"""``python -m afterparty`` runs the command line."""

from afterparty.entry import main

main()
