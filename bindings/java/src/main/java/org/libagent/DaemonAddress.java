package org.libagent;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;

/**
 * Where a daemon listens, parsed from the {@code daemon} argument of
 * {@link AgentConnection#connect}: {@code "/path/to.sock"} (Unix; any string with a '/'),
 * {@code "host:port"}, {@code "[v6]:port"}, {@code "port"} (127.0.0.1), {@code "port@host"}
 * (Spread's form), or a plain file name without '/', ':' or '@' (a Unix socket in the current
 * directory). null means {@code $AGENT_DAEMON}, else {@code /tmp/agentd.sock}.
 */
record DaemonAddress(String unixPath, String host, int port) {
  static final String DEFAULT_UNIX_SOCKET = "/tmp/agentd.sock";
  static final String ENV_VAR = "AGENT_DAEMON";

  boolean isUnix() {
    return unixPath != null;
  }

  /** The socket address; a TCP host name is resolved here. */
  SocketAddress socketAddress() {
    if (isUnix()) return UnixDomainSocketAddress.of(Path.of(unixPath));
    InetSocketAddress a = new InetSocketAddress(host, port);
    if (a.isUnresolved()) throw new IllegalArgumentException("unknown host " + host);
    return a;
  }

  @Override
  public String toString() {
    if (isUnix()) return unixPath;
    return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
  }

  static DaemonAddress parse(String daemon) {
    if (daemon == null) {
      String env = System.getenv(ENV_VAR);
      daemon = env == null || env.isEmpty() ? DEFAULT_UNIX_SOCKET : env;
    }
    if (daemon.isEmpty()) {
      throw new IllegalArgumentException(
          "daemon address is empty; expected e.g. /tmp/agentd.sock or 127.0.0.1:4803");
    }
    if (daemon.indexOf('/') >= 0) return new DaemonAddress(daemon, null, 0);
    if (isDigits(daemon)) return new DaemonAddress(null, "127.0.0.1", port(daemon, daemon));
    int at = daemon.indexOf('@');
    if (at >= 0) {
      String host = daemon.substring(at + 1);
      return new DaemonAddress(null, host.isEmpty() ? "127.0.0.1" : host,
          port(daemon.substring(0, at), daemon));
    }
    if (daemon.startsWith("[")) {
      int close = daemon.indexOf("]:");
      if (close < 0) {
        throw new IllegalArgumentException(
            "bad daemon address \"" + daemon + "\": expected [v6addr]:port");
      }
      return new DaemonAddress(null, daemon.substring(1, close),
          port(daemon.substring(close + 2), daemon));
    }
    int colon = daemon.lastIndexOf(':');
    if (colon >= 0) {
      String host = daemon.substring(0, colon);
      return new DaemonAddress(null, host.isEmpty() ? "127.0.0.1" : host,
          port(daemon.substring(colon + 1), daemon));
    }
    return new DaemonAddress(daemon, null, 0); // a socket file in the current directory
  }

  private static boolean isDigits(String s) {
    if (s.isEmpty()) return false;
    for (int i = 0; i < s.length(); ++i) {
      if (s.charAt(i) < '0' || s.charAt(i) > '9') return false;
    }
    return true;
  }

  private static int port(String text, String spec) {
    if (!isDigits(text) || text.length() > 5 || Integer.parseInt(text) == 0
        || Integer.parseInt(text) > 65535) {
      throw new IllegalArgumentException(
          "bad port \"" + text + "\" in daemon address \"" + spec + "\"");
    }
    return Integer.parseInt(text);
  }
}
