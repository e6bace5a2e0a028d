package org.libagent;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * A name of the daemon's secrets file and its secret: how a TCP client proves who it is where
 * the daemon asks ({@code clients.tcp_auth = "secret"}; docs/client-protocol.md,
 * "Authentication"). The secret is never sent: the client answers the daemon's fresh nonce with
 * an HMAC-SHA256 under it.
 *
 * <p>A secrets file holds {@code NAME SECRET} lines ({@code #} comments and blank lines are
 * skipped), the daemon's own format; it must not be readable or writable by group or others.
 */
public final class Credentials {
  static final int MIN_SECRET_BYTES = 16;
  static final int MAX_SECRET_BYTES = 1024;

  private final String user;
  private final byte[] secret;

  /**
   * @param user the name (1..64 of A-Z a-z 0-9 . _ @ -)
   * @param secret its secret, 16..1024 bytes as written in the daemon's file
   */
  public Credentials(String user, byte[] secret) {
    if (!validName(user)) {
      throw new IllegalArgumentException("not a valid name for a secrets file: " + user);
    }
    if (secret.length < MIN_SECRET_BYTES || secret.length > MAX_SECRET_BYTES) {
      throw new IllegalArgumentException("a secret has 16..1024 bytes, not " + secret.length);
    }
    this.user = user;
    this.secret = secret.clone();
  }

  /** The same with the secret as text (ASCII, as in the file). */
  public Credentials(String user, String secret) {
    this(user, secret.getBytes(StandardCharsets.US_ASCII));
  }

  public String user() {
    return user;
  }

  byte[] secret() {
    return secret;
  }

  /**
   * The entry {@code user} of a secrets file; with user null, its only entry.
   *
   * @throws AuthFailedException the file cannot be read, others may read it, or it has no such
   *     entry
   */
  public static Credentials fromFile(Path file, String user) {
    Map<String, String> entries;
    try {
      Set<PosixFilePermission> p = Files.getPosixFilePermissions(file, LinkOption.NOFOLLOW_LINKS);
      for (PosixFilePermission bad : new PosixFilePermission[] {
          PosixFilePermission.GROUP_READ, PosixFilePermission.GROUP_WRITE,
          PosixFilePermission.GROUP_EXECUTE, PosixFilePermission.OTHERS_READ,
          PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_EXECUTE}) {
        if (p.contains(bad)) {
          throw new AuthFailedException(file + ": group or others may read or write it: "
              + "chmod 600 " + file);
        }
      }
      entries = parse(Files.readAllLines(file, StandardCharsets.US_ASCII), file.toString());
    } catch (IOException | UnsupportedOperationException e) {
      throw new AuthFailedException("cannot read secrets file " + file + ": " + e.getMessage());
    }
    if (user != null && !user.isEmpty()) {
      String s = entries.get(user);
      if (s == null) throw new AuthFailedException(file + " has no entry for " + user);
      return new Credentials(user, s);
    }
    if (entries.size() != 1) {
      throw new AuthFailedException(file + " has " + entries.size()
          + " entries: name the one to use (AGENT_USER)");
    }
    Map.Entry<String, String> only = entries.entrySet().iterator().next();
    return new Credentials(only.getKey(), only.getValue());
  }

  /**
   * The credentials of the environment: {@code AGENT_SECRET_FILE} and {@code AGENT_USER} (as
   * libagent reads them); null when {@code AGENT_SECRET_FILE} is not set.
   */
  public static Credentials fromEnvironment() {
    String file = System.getenv("AGENT_SECRET_FILE");
    if (file == null || file.isEmpty()) return null;
    return fromFile(Path.of(file), System.getenv("AGENT_USER"));
  }

  static Map<String, String> parse(Iterable<String> lines, String where) {
    Map<String, String> out = new LinkedHashMap<>();
    int n = 0;
    for (String line : lines) {
      ++n;
      String[] f = Arrays.stream(line.trim().split("[ \t]+")).filter(s -> !s.isEmpty())
          .toArray(String[]::new);
      if (f.length == 0 || f[0].startsWith("#")) continue;
      if (f.length != 2 || !validName(f[0]) || f[1].length() < MIN_SECRET_BYTES
          || f[1].length() > MAX_SECRET_BYTES || out.containsKey(f[0])) {
        throw new AuthFailedException(where + ":" + n + ": not a 'NAME SECRET' line of a "
            + "secrets file (secrets have 16..1024 characters, names appear once)");
      }
      out.put(f[0], f[1]);
    }
    return out;
  }

  static boolean validName(String name) {
    if (name == null || name.isEmpty() || name.length() > 64) return false;
    for (int i = 0; i < name.length(); ++i) {
      char c = name.charAt(i);
      boolean ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
          || c == '.' || c == '_' || c == '@' || c == '-';
      if (!ok) return false;
    }
    return true;
  }

  @Override
  public String toString() {
    return "Credentials[" + user + "]"; // never the secret
  }
}
