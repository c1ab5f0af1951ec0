# Shared by the maintainer scripts of pirack and pirack-agent (copied into each by nfpm).
# DPKG_ROOT is set when dpkg installs into another root without chroot (dpkg --root
# --force-script-chrootless, as the package test does): every path and tool then works on that
# root, and systemd, which runs only on the real one, is left alone.
root="${DPKG_ROOT:-}"
prefix=""
[ -n "$root" ] && prefix="--prefix $root"

has_group() { grep -q "^$1:" "$root/etc/group"; }
has_user() { grep -q "^$1:" "$root/etc/passwd"; }
systemd_here() { [ -z "$root" ] && [ -d /run/systemd/system ]; }

# ensure_user makes the pirack system user and group, shared by both packages.
ensure_user() {
	has_group pirack || groupadd --system $prefix pirack
	has_user pirack || useradd --system $prefix --gid pirack --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin --comment "pirack service" pirack
}

# other_installed says whether the other package (pirack or pirack-agent) is still installed:
# the user stays while one of them is.
other_installed() {
	status=$(dpkg-query ${root:+--root="$root"} -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)
	[ "$status" = installed ]
}

remove_user_unless() {
	if ! other_installed "$1" && has_user pirack; then
		userdel $prefix pirack
	fi
	if ! other_installed "$1" && has_group pirack; then
		groupdel $prefix pirack
	fi
}
