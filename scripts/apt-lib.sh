# Shared by scripts/setup and scripts/vm-image (sourced, not run).

# The Debian mirror the system's own apt sources use (never a hard-coded host).
debian_mirror() {
    local uri
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *//p' \
          | tr ' ' '\n' | grep -v -e security -e '^$' | head -1)
    [ -n "$uri" ] || uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | awk '/^deb / { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit } }' \
          | grep -v security | head -1)
    [ -n "$uri" ] && echo "$uri"
}

# apt with a private source list holding SUITES of the system's mirror, and
# private lists: the system's apt never sees those suites. Sets the array APTX.
# Usage: private_apt DIR SUITE...   (private_apt_config: the same without the update)
private_apt() {
    private_apt_config "$@" || return 1
    apt-get "${APTX[@]}" update -qq >"$1/update.log" 2>&1 || { tail -5 "$1/update.log" >&2; return 1; }
}

private_apt_config() {
    local dir=$1 uri s; shift
    uri=$(debian_mirror) || { echo "no Debian mirror in the system's apt sources" >&2; return 1; }
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    : >"$dir/sources.list"
    for s in "$@"; do
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $s main" >>"$dir/sources.list"
    done
    APTX=(-o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
          -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache"
          -o Acquire::Check-Valid-Until=false -o APT::Get::List-Cleanup=false)
}
