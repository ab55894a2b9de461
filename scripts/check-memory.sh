#!/bin/sh
# Run the spec suite under valgrind (memcheck) and fail on any invalid access
# or definite/indirect leak.  Child processes (the test peers) are not traced.
set -u
cd "$(dirname "$0")/.."
logdir=$(mktemp -d /tmp/wsbeat-vg.XXXXXX)
WSBEAT_UNDER_VALGRIND=1 valgrind --quiet --keep-debuginfo=yes --leak-check=full \
	--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
	--error-exitcode=99 --log-file="$logdir/vg.%p.log" \
	lua5.4 "$(command -v busted)" "$@"
rc=$?
bad=0
for f in "$logdir"/vg.*.log; do
	if [ -s "$f" ]; then
		cat "$f"
		bad=1
	fi
done
rm -rf "$logdir"
if [ "$rc" -eq 99 ] || [ "$bad" -ne 0 ]; then
	echo "check-memory: valgrind reported errors" >&2
	exit 1
fi
exit "$rc"
