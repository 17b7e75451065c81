# The Debian 12 packages, built by `cpack -G DEB` from the install components (included by the
# top CMakeLists.txt after the install rules):
#   patchdrop       the daemon, /etc/patchdrop/patchdrop.conf (a conffile), the systemd unit, the
#                   man pages; its maintainer scripts (postinst, prerm, postrm here) create the
#                   patchdrop user and /var/lib/patchdrop, and enable, start, restart and purge
#                   the service the way dh_installsystemd's would (deb-systemd-helper and
#                   deb-systemd-invoke).
#   patchdrop-mock  the Patchworks emulator, a test tool, with its man page.
# Both carry /usr/share/doc/<package>/copyright (DEP-5, from LICENSE) and changelog.Debian.gz,
# binaries are stripped, man pages gzipped with -9n: lintian has no error or warning for them
# (tests/e2e/package_deb.sh checks).
#
# Version: <CPACK_PACKAGE_VERSION (the project's)>-<CPACK_DEBIAN_PACKAGE_RELEASE (1)>; a rebuild
# of the same sources gets -DCPACK_DEBIAN_PACKAGE_RELEASE=2.
set(PD_DEB_DIR ${CMAKE_CURRENT_LIST_DIR})
if(NOT DEFINED CPACK_PACKAGE_VERSION)
  set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
endif()
if(NOT DEFINED CPACK_DEBIAN_PACKAGE_RELEASE)
  set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
endif()
set(PD_DEB_VERSION "${CPACK_PACKAGE_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}")

# /usr/share/doc/<package>/: the copyright file in the machine-readable format, the license
# paragraph being LICENSE's permission text, indented, blank lines as " ."; and the changelog,
# whose newest entry is this version.
file(READ ${CMAKE_SOURCE_DIR}/LICENSE PD_LICENSE_TEXT)
string(REGEX REPLACE "^.*\n(Permission is hereby granted)" "\\1" PD_LICENSE_TEXT "${PD_LICENSE_TEXT}")
string(STRIP "${PD_LICENSE_TEXT}" PD_LICENSE_TEXT)
string(REPLACE "\n\n" "\n.\n" PD_LICENSE_TEXT "${PD_LICENSE_TEXT}")
string(REPLACE "\n" "\n " PD_LICENSE_TEXT " ${PD_LICENSE_TEXT}")
# One changelog for both packages, as for the binary packages of one Debian source.
set(PD_DEB_DOC_DIR ${CMAKE_BINARY_DIR}/deb)
configure_file(${PD_DEB_DIR}/copyright.in ${PD_DEB_DOC_DIR}/copyright @ONLY)
configure_file(${PD_DEB_DIR}/changelog.in ${PD_DEB_DOC_DIR}/changelog.Debian @ONLY)
execute_process(COMMAND gzip -9nf -k ${PD_DEB_DOC_DIR}/changelog.Debian COMMAND_ERROR_IS_FATAL ANY)
install(FILES ${PD_DEB_DOC_DIR}/copyright ${PD_DEB_DOC_DIR}/changelog.Debian.gz
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/patchdrop COMPONENT patchdrop)
install(FILES ${PD_DEB_DOC_DIR}/copyright ${PD_DEB_DOC_DIR}/changelog.Debian.gz
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/patchdrop-mock COMPONENT mock)

set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "patchdrop")
set(CPACK_PACKAGE_VENDOR "patchdrop")
set(CPACK_PACKAGE_CONTACT "patchdrop maintainers <patchdrop@example.com>")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_STRIP_FILES ON)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
    GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
# A conffile is 0644 in the package (lintian); the sample names no secret, and postinst makes
# it 0640 root:patchdrop before anyone can fill one in. (`cmake --install` keeps 0640.)
set(CPACK_PRE_BUILD_SCRIPTS ${PD_DEB_DIR}/prebuild.cmake)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL patchdrop mock)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# The descriptions: a summary line, then the extended description (lines under 80 columns,
# an empty line between paragraphs).
set(CPACK_DEBIAN_PATCHDROP_PACKAGE_NAME "patchdrop")
set(CPACK_DEBIAN_PATCHDROP_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PATCHDROP_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PATCHDROP_DESCRIPTION "deliver files from drop folders to Patchworks process flows
patchdrop watches drop folders, typically the upload folders of an SFTP
server, and starts a Patchworks process flow with every file that is
completely written as its payload. A file too big for one request is split
between whole records: JSON array elements, NDJSON lines, XML records, CSV
rows with the header repeated, text lines.

Delivery is at least once and never silently twice: progress is saved after
every acknowledged chunk, requests are retried with backoff, logins renewed
and the account's rate limit respected. A delivered file is archived with a
receipt of its flow-run ids; a refused one moves to a failed folder with the
reason.

This package runs patchdrop as a hardened systemd service under its own
system user. The service is enabled on installation and started once
/etc/patchdrop/patchdrop.conf passes `patchdrop check-config`.")
set(CPACK_DEBIAN_PATCHDROP_PACKAGE_CONTROL_EXTRA
    ${PD_DEB_DIR}/postinst ${PD_DEB_DIR}/prerm ${PD_DEB_DIR}/postrm ${PD_DEB_DIR}/conffiles)

set(CPACK_DEBIAN_MOCK_PACKAGE_NAME "patchdrop-mock")
set(CPACK_DEBIAN_MOCK_PACKAGE_SECTION "devel")
set(CPACK_DEBIAN_MOCK_DESCRIPTION "Patchworks API emulator for testing patchdrop
patchdrop-mock plays the parts of the Patchworks API that patchdrop talks to
(logins, starting process flows, flow-run status, cross-reference lookups) on
the loopback interface, so demos, tests and benchmarks need no Patchworks
account. It can misbehave on purpose, by script or at random from a seed
(server errors, dropped connections, hangs, truncated answers, rate limits),
so every fault can be replayed.

It is a test tool: it keeps everything in memory and is not meant for
production machines.")
include(CPack)
