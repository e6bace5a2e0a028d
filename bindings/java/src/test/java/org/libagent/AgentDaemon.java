package org.libagent;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * One agentd in a temporary directory (socket, state, log), for the tests. The binary is
 * $AGENTD (CTest sets it), else the system property {@code agentd}, else build/agentd/agentd
 * in the current directory or one of its parents. {@link #close()} stops only the process this
 * object started (SIGTERM, SIGKILL after 10 s) and removes the directory.
 */
final class AgentDaemon implements AutoCloseable {
  static final long START_TIMEOUT_MS = 15_000; // sanitizer builds start slower
  static final long STOP_TIMEOUT_MS = 10_000;

  final String name;
  final Path dir;
  final Path socket;
  final Path log;
  final int tcpPort; // 0: TCP off
  private final Process process;

  private AgentDaemon(String name, Path dir, int tcpPort, Process process) {
    this.name = name;
    this.dir = dir;
    this.socket = dir.resolve("s.sock");
    this.log = dir.resolve("agentd.log");
    this.tcpPort = tcpPort;
    this.process = process;
  }

  /** A daemon on a Unix socket only. */
  static AgentDaemon start(String name) throws IOException {
    return start(name, false);
  }

  /** A daemon on a Unix socket and, with tcp, 127.0.0.1 on a free port. */
  static AgentDaemon start(String name, boolean tcp) throws IOException {
    return start(name, tcp, null, true);
  }

  /**
   * A daemon on a Unix socket whose configuration file holds config (e.g. a {@code [persist]}
   * section naming its persistent groups).
   */
  static AgentDaemon start(String name, String config) throws IOException {
    return start(name, false, config, true);
  }

  /**
   * The same with a configuration file holding config (null: none); without wait, it returns
   * once started (a ring's daemons listen only once they see each other).
   */
  static AgentDaemon start(String name, boolean tcp, String config, boolean wait)
      throws IOException {
    return start(name, tcp, config, wait, null);
  }

  /**
   * With tcp, TCP clients authenticate against tcpSecrets (a secrets file's text, "NAME SECRET"
   * lines); null: the TCP listener takes them unauthenticated ({@code tcp_auth = "none"}), for
   * tests of other things over TCP.
   */
  static AgentDaemon start(String name, boolean tcp, String config, boolean wait,
      String tcpSecrets) throws IOException {
    IOException last = null;
    for (int attempt = 0; attempt < 3; ++attempt) { // a free port may be taken meanwhile
      int port = tcp ? freePort() : 0;
      Path dir = Files.createTempDirectory("agent-java-");
      List<String> cmd = new ArrayList<>(List.of(binary()));
      if (tcp) {
        String keys;
        if (tcpSecrets != null) {
          Path secrets = dir.resolve("clients.secrets");
          Files.createFile(secrets, PosixFilePermissions.asFileAttribute(
              PosixFilePermissions.fromString("rw-------")));
          Files.writeString(secrets, tcpSecrets, StandardCharsets.UTF_8);
          keys = "secrets_file = \"" + secrets + "\"\n";
        } else {
          keys = "tcp_auth = \"none\"\n";
        }
        String c = config == null ? "" : config;
        config = c.contains("[clients]\n") ? c.replaceFirst("\\[clients]\n", "[clients]\n" + keys)
            : "[clients]\n" + keys + c;
      }
      if (config != null) {
        Files.writeString(dir.resolve("agentd.toml"), config, StandardCharsets.UTF_8);
        cmd.addAll(List.of("--config", dir.resolve("agentd.toml").toString()));
      }
      cmd.addAll(List.of("--name", name,
          "--unix", dir.resolve("s.sock").toString(),
          "--tcp", tcp ? "127.0.0.1:" + port : "off",
          "--state-dir", dir.resolve("state").toString(), "--log-level", "info"));
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
          .redirectOutput(dir.resolve("agentd.log").toFile())
          .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
          .start();
      AgentDaemon d = new AgentDaemon(name, dir, port, p);
      if (!wait) return d;
      try {
        d.waitReady();
        return d;
      } catch (IOException e) {
        last = e;
        d.close();
        if (!tcp) break;
      }
    }
    throw last;
  }

  String socketPath() {
    return socket.toString();
  }

  String tcpAddress() {
    return "127.0.0.1:" + tcpPort;
  }

  AgentConnection connect(String clientName) {
    return AgentConnection.connect(socketPath(), clientName);
  }

  boolean isAlive() {
    return process.isAlive();
  }

  String log() {
    try {
      return Files.readString(log, StandardCharsets.UTF_8);
    } catch (IOException e) {
      return "(no log: " + e + ")";
    }
  }

  void waitReady() throws IOException {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(START_TIMEOUT_MS);
    for (;;) {
      if (!process.isAlive()) {
        throw new IOException("agentd exited at start (status " + process.exitValue() + "):\n"
            + log());
      }
      if (accepts(UnixDomainSocketAddress.of(socket))
          && (tcpPort == 0 || accepts(new InetSocketAddress("127.0.0.1", tcpPort)))) {
        return;
      }
      if (System.nanoTime() - deadline > 0) {
        throw new IOException("agentd did not listen within " + START_TIMEOUT_MS + " ms:\n"
            + log());
      }
      try {
        Thread.sleep(10);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("interrupted while waiting for agentd");
      }
    }
  }

  private static boolean accepts(java.net.SocketAddress a) {
    if (a instanceof UnixDomainSocketAddress u && !Files.exists(u.getPath())) return false;
    try (SocketChannel ch = a instanceof UnixDomainSocketAddress
        ? SocketChannel.open(StandardProtocolFamily.UNIX) : SocketChannel.open()) {
      ch.connect(a); // blocking; local, so immediate
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
      return s.getLocalPort();
    }
  }

  static String binary() {
    String env = System.getenv("AGENTD");
    if (env == null || env.isEmpty()) env = System.getProperty("agentd");
    if (env != null && !env.isEmpty()) {
      if (!Files.isExecutable(Path.of(env))) {
        throw new IllegalStateException("AGENTD=" + env + " is not an executable");
      }
      return env;
    }
    for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
      Path cand = p.resolve("build").resolve("agentd").resolve("agentd");
      if (Files.isExecutable(cand)) return cand.toString();
    }
    throw new IllegalStateException("agentd not found: set AGENTD to its path (CTest does), or "
        + "build it with 'ninja -C build agentd' and run from the source tree");
  }

  /** Stops the daemon; returns its exit status (-1 if it had to be killed). */
  int stop() {
    if (process.isAlive()) {
      process.destroy(); // SIGTERM to this process only
      try {
        if (!process.waitFor(STOP_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
          process.destroyForcibly();
          process.waitFor(STOP_TIMEOUT_MS, TimeUnit.MILLISECONDS);
          return -1;
        }
      } catch (InterruptedException e) {
        process.destroyForcibly();
        Thread.currentThread().interrupt();
        return -1;
      }
    }
    return process.exitValue();
  }

  @Override
  public void close() {
    stop();
    try (Stream<Path> s = Files.walk(dir)) {
      s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException e) {
      // best effort
    }
  }
}
