# What `cmake --install` and `cpack -G DEB` add besides the targets' own install() rules
# (agentd, libagent, libspread and their headers): man pages, the systemd unit, the installed
# configuration, pkg-config files, docs, and the Debian package's settings. README.md,
# "Installing", lists the tree.

# Man pages (roff, man/): installed gzipped, as Debian keeps them.
set(_agent_man agentd.8 agentd.toml.5)
# agentctl's page comes with the tool (its target installs itself: install(TARGETS agentctl)).
if(TARGET agentctl)
  list(APPEND _agent_man agentctl.1)
endif()
set(_agent_man_gz)
foreach(page ${_agent_man})
  string(REGEX MATCH "[0-9]$" section "${page}")
  set(gz "${CMAKE_BINARY_DIR}/man/${page}.gz")
  add_custom_command(OUTPUT "${gz}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${CMAKE_BINARY_DIR}/man"
    COMMAND gzip -9nc "${CMAKE_SOURCE_DIR}/man/${page}" > "${gz}"
    DEPENDS "${CMAKE_SOURCE_DIR}/man/${page}" VERBATIM)
  list(APPEND _agent_man_gz "${gz}")
  install(FILES "${gz}" DESTINATION share/man/man${section})
endforeach()
add_custom_target(man_pages ALL DEPENDS ${_agent_man_gz})

# The unit, the configuration and the pkg-config files name installed paths: made at install
# time for the prefix given then (packaging/install_files.cmake).
install(CODE "
  set(AGENT_SOURCE_DIR \"${CMAKE_SOURCE_DIR}\")
  set(AGENT_BINARY_DIR \"${CMAKE_BINARY_DIR}\")
  set(AGENT_VERSION \"${PROJECT_VERSION}\")
  include(\"${CMAKE_SOURCE_DIR}/packaging/install_files.cmake\")")
install(FILES packaging/agentd.sysusers DESTINATION lib/sysusers.d RENAME agentd.conf)
install(FILES README.md docs/agentd.md docs/client-protocol.md docs/security.md
        DESTINATION share/doc/libagent)
install(FILES bindings/README.md DESTINATION share/doc/libagent RENAME bindings.md)

# The Debian package: `cpack -G DEB` in the build directory (or the target `package`).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME libagent)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "libagent maintainers <libagent@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Spread-style group messaging: agentd, libagent, libspread")
set(CPACK_PACKAGE_DESCRIPTION "agentd, the daemon (token ring, client groups, message log), \
with its systemd unit, configuration and man pages; libagent (agent.h) and libspread \
(Spread's sp.h API) with their headers and pkg-config files; the example clients.")
# Installed as to /usr through DESTDIR: the install-time files see the prefix /usr (and put
# the configuration in /etc), not CPack's staging directory.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
# Dependencies from the binaries' libraries (dpkg-shlibdeps, from dpkg-dev), and a shlibs
# file for libagent.so.0 and libspread.so.0; passwd for the postinst's useradd.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd")
configure_file(packaging/conffiles "${CMAKE_BINARY_DIR}/packaging/conffiles" COPYONLY)
# The shared libraries: ld.so's cache learns them (as dh_makeshlibs's trigger does).
configure_file(packaging/triggers "${CMAKE_BINARY_DIR}/packaging/triggers" COPYONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${CMAKE_SOURCE_DIR}/packaging/postinst" "${CMAKE_SOURCE_DIR}/packaging/prerm"
    "${CMAKE_SOURCE_DIR}/packaging/postrm" "${CMAKE_BINARY_DIR}/packaging/conffiles"
    "${CMAKE_BINARY_DIR}/packaging/triggers")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
