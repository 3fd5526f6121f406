#!/bin/sh
# Regenerate the build system (configure, Makefile.in, build-aux/) from a git checkout.
missing=
command -v autoreconf >/dev/null 2>&1 || missing="$missing autoconf"
command -v automake >/dev/null 2>&1 || missing="$missing automake"
command -v libtoolize >/dev/null 2>&1 || missing="$missing libtool"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
if [ -n "$missing" ]; then
    echo "autogen.sh: missing tools; install the Debian packages:$missing (or run tools/install-deps)" >&2
    exit 1
fi
# libtoolize first: with its macros already in m4/ when aclocal first runs,
# aclocal.m4 includes them and Makefile.in lists them for the tarball every
# time (with an empty m4/ that depended on the timestamps autoreconf left,
# and a release tarball could go out without m4/libtool.m4).
cd "$(dirname "$0")" && libtoolize --copy --force --quiet && exec autoreconf -fi
