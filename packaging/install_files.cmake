# Runs at install time (cmake --install, cpack), included by cmake/AgentInstall.cmake's
# install(CODE): the files that name installed paths, made for the prefix installed to.
# In: CMAKE_INSTALL_PREFIX (the install's), AGENT_SOURCE_DIR, AGENT_BINARY_DIR, AGENT_VERSION.
set(AGENT_PREFIX "${CMAKE_INSTALL_PREFIX}")
# As GNUInstallDirs: the prefix /usr (a distribution's package) keeps its configuration in
# /etc, any other prefix in PREFIX/etc.
if(AGENT_PREFIX STREQUAL "/usr" OR AGENT_PREFIX STREQUAL "/")
  set(_sysconf "/etc")
else()
  set(_sysconf "${AGENT_PREFIX}/etc")
endif()
set(AGENT_BINDIR "${AGENT_PREFIX}/bin")
set(AGENT_CONFIG "${_sysconf}/agentd/agentd.toml")
# One directory per destination: a cpack and a cmake --install running at once (ctest -j2)
# must not take each other's files.
string(MD5 _dest "$ENV{DESTDIR}${AGENT_PREFIX}")
set(_out "${AGENT_BINARY_DIR}/packaging/installed/${_dest}")
file(MAKE_DIRECTORY "${_out}")

configure_file("${AGENT_SOURCE_DIR}/packaging/agentd.service.in" "${_out}/agentd.service" @ONLY)
configure_file("${AGENT_SOURCE_DIR}/packaging/libagent.pc.in" "${_out}/libagent.pc" @ONLY)
configure_file("${AGENT_SOURCE_DIR}/packaging/libspread.pc.in" "${_out}/libspread.pc" @ONLY)

# The installed configuration is the documented example (etc/agentd.toml) with the two paths
# the systemd unit provides: StateDirectory= and RuntimeDirectory=. Each replacement must
# happen: an example that no longer has the line fails the install instead of shipping a
# configuration the unit cannot run.
file(READ "${AGENT_SOURCE_DIR}/etc/agentd.toml" _toml)
function(agent_set_line from to)
  string(FIND "${_toml}" "${from}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "etc/agentd.toml has no line '${from}' to set for the installed "
                        "configuration (packaging/install_files.cmake)")
  endif()
  string(REPLACE "${from}" "${to}" t "${_toml}")
  set(_toml "${t}" PARENT_SCOPE)
endfunction()
agent_set_line("# state_dir = \"/tmp/agentd-state/host1\""
               "state_dir = \"/var/lib/agentd\"  # the unit's StateDirectory=")
agent_set_line("unix_socket = \"/tmp/agentd.sock\" # \"\" disables the Unix socket"
               "unix_socket = \"/run/agentd/agentd.sock\"  # in the unit's RuntimeDirectory= (\"\": none)")
file(WRITE "${_out}/agentd.toml"
     "# Installed by libagent ${AGENT_VERSION}: etc/agentd.toml with daemon.state_dir and\n"
     "# clients.unix_socket set for the systemd unit (agentd.service). Clients connect with\n"
     "# AGENT_DAEMON=/run/agentd/agentd.sock. Reference: agentd.toml(5).\n"
     "${_toml}")

file(INSTALL DESTINATION "${AGENT_PREFIX}/lib/systemd/system" TYPE FILE
     FILES "${_out}/agentd.service")
file(INSTALL DESTINATION "${AGENT_PREFIX}/lib/pkgconfig" TYPE FILE
     FILES "${_out}/libagent.pc" "${_out}/libspread.pc")
file(INSTALL DESTINATION "${_sysconf}/agentd" TYPE FILE FILES "${_out}/agentd.toml")
file(REMOVE_RECURSE "${_out}")
