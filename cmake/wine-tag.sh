# Sourced by the scripts that pick a Wine prefix: sets IOCP_WINE_TAG to "wine10" when the
# `wine` on PATH is cmake/wine10-bin's (the Wine 10 tree, scripts/wine10.sh), else to "".
# Each Wine gets prefixes of its own (PREFIX-wine10): a newer Wine upgrades a prefix it
# runs in, and the older one then refuses it.
case $(command -v wine) in
*/wine10-bin/wine) IOCP_WINE_TAG=wine10 ;;
*) IOCP_WINE_TAG= ;;
esac
