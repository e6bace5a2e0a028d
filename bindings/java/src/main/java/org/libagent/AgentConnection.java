package org.libagent;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ClosedSelectorException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.time.Instant;
import java.util.Collection;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One client connection to an agentd, speaking the client protocol (docs/client-protocol.md)
 * directly over a Unix domain socket or TCP: pure Java, no native library.
 *
 * <pre>{@code
 * try (AgentConnection c = AgentConnection.connect("/tmp/agentd.sock", "alice")) {
 *   c.join("chat");
 *   c.multicast(Service.AGREED, "chat", "hello".getBytes(StandardCharsets.UTF_8));
 *   Message m = c.receive(Duration.ofSeconds(1)); // null if nothing came in time
 * }
 * }</pre>
 *
 * <p><b>Requests are not acknowledged.</b> A join has taken effect when the connection's own
 * membership message for the group arrives; a request the daemon refuses produces an {@link
 * ErrorMessage} in the stream. Names, groups, services and sizes are checked here first with
 * the daemon's rules, and violations throw before anything is sent.
 *
 * <p><b>Thread safety.</b> All methods may be called from any thread. Sends ({@link #join},
 * {@link #leave}, {@link #multicast}, {@link #sendPrivate}) are serialised by one lock, so
 * frames from concurrent senders never interleave; {@link #receive} is serialised by another.
 * One thread may therefore send while another receives, which a client that sends a lot must
 * do (the daemon drops a client whose unread deliveries pass its queue limit, 64 MiB by
 * default). {@link #close()} may be called from any thread at any time and wakes up blocked
 * calls, which then throw {@link ConnectionClosedException}. While a listener runs ({@link
 * #startListening}), only its thread receives.
 *
 * <p><b>Exceptions</b> are unchecked {@link AgentException}s. The socket is used in
 * non-blocking mode behind selectors, so interrupting a thread never closes the connection:
 * {@code receive} returns null (the interrupt status stays set) and a send in progress finishes
 * its frame.
 */
public final class AgentConnection implements AutoCloseable {
  /** The protocol version this binding speaks. */
  public static final int PROTOCOL_VERSION = Protocol.VERSION;
  /** The connect timeout of the overloads that take none. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(5);

  private static final int INITIAL_READ_BUFFER = 256 * 1024;
  private static final int SEND_BUFFER = 128 * 1024; // frames up to this size are copied whole

  private final SocketChannel channel;
  private final Selector readSelector;
  private final Selector writeSelector;
  private final String address;

  // set by the handshake, before the connection is returned
  private String privateGroup;
  private String daemonName;
  private int maxMessage;
  private int maxFrame = Protocol.DEFAULT_MAX_MESSAGE + Protocol.FRAME_OVERHEAD;
  private boolean positions; // the hello asked for positioned data

  private final ReentrantLock sendLock = new ReentrantLock();
  private final ByteBuffer sendBuffer = Protocol.newBuffer(SEND_BUFFER, true);
  private boolean writeBroken; // guarded by sendLock: a frame was cut by a write error

  private final ReentrantLock receiveLock = new ReentrantLock();
  private byte[] rbuf = new byte[INITIAL_READ_BUFFER]; // guarded by receiveLock
  private int rstart;
  private int rend;
  private volatile ErrorMessage lastError; // the last error frame, named when the daemon closes

  private final Object stateLock = new Object();
  private volatile boolean closed; // the channel is closed (or being closed)
  private volatile boolean closedByUser;
  private volatile String closeReason;
  private Exception closeCause;

  private Thread listenerThread; // guarded by stateLock
  private volatile boolean stopListening;

  private AgentConnection(SocketChannel channel, Selector readSelector, Selector writeSelector,
      String address) {
    this.channel = channel;
    this.readSelector = readSelector;
    this.writeSelector = writeSelector;
    this.address = address;
  }

  // ------------------------------------------------------------------------------- connecting

  /**
   * Connects to the default daemon ({@code $AGENT_DAEMON} or /tmp/agentd.sock) with a name the
   * daemon chooses, membership messages on and a 5 s timeout.
   */
  public static AgentConnection connect() {
    return connect(null, null, true, DEFAULT_TIMEOUT);
  }

  /** {@link #connect(String, String, boolean, Duration)} with membership messages, 5 s timeout. */
  public static AgentConnection connect(String daemon, String name) {
    return connect(daemon, name, true, DEFAULT_TIMEOUT);
  }

  /**
   * Connects and says hello.
   *
   * @param daemon {@code "/path/to.sock"} (Unix; any string with a '/'), {@code "host:port"},
   *     {@code "[v6]:port"}, {@code "port"} (127.0.0.1) or {@code "port@host"} (Spread's form);
   *     null means the environment variable {@code AGENT_DAEMON}, else {@code /tmp/agentd.sock}
   * @param name the private name, 1..10 printable ASCII characters without '#'; null lets the
   *     daemon choose a unique one
   * @param membership deliver membership messages
   * @param timeout bound on connecting and the handshake; null waits forever
   * @throws IllegalNameException the name breaks the rules (checked before connecting) or the
   *     daemon refused it
   * @throws NameTakenException another connection of that daemon has the name
   * @throws VersionMismatchException the daemon does not speak protocol version 1
   * @throws RejectedException the daemon refused for another reason (too many clients,
   *     shutting down)
   * @throws ConnectFailedException the daemon cannot be reached, the address is bad, or the
   *     handshake did not finish within the timeout
   */
  public static AgentConnection connect(String daemon, String name, boolean membership,
      Duration timeout) {
    return connect(daemon, name, membership, false, timeout);
  }

  /**
   * {@link #connect(String, String, boolean, Duration)}, and with {@code positions} live data
   * messages carry their {@link DataMessage#position()} in the total order (history entries
   * always do): the place a program that stops can ask for the history after.
   */
  public static AgentConnection connect(String daemon, String name, boolean membership,
      boolean positions, Duration timeout) {
    return connect(daemon, name, membership, positions, timeout, null);
  }

  /**
   * {@link #connect(String, String, boolean, boolean, Duration)} answering a TCP daemon that
   * asks clients to authenticate with these credentials. Without them (null) the environment's
   * are used ({@link Credentials#fromEnvironment()}: {@code AGENT_SECRET_FILE},
   * {@code AGENT_USER}); a daemon that asks nothing (the Unix socket) leaves them unused.
   *
   * @throws AuthFailedException the daemon refused the name or secret (error 20), or asked and
   *     there was nothing to answer with
   */
  public static AgentConnection connect(String daemon, String name, boolean membership,
      boolean positions, Duration timeout, Credentials credentials) {
    int flags = (membership ? Protocol.HELLO_WANT_MEMBERSHIP : 0)
        | (positions ? Protocol.HELLO_POSITIONS : 0);
    return connect(daemon, name, flags, Protocol.MAGIC, Protocol.VERSION, timeout, credentials);
  }

  /** The handshake with any magic and version: tests use it to provoke version mismatch. */
  static AgentConnection connect(String daemon, String name, int flags, int magic, int version,
      Duration timeout) {
    return connect(daemon, name, flags, magic, version, timeout, null);
  }

  private static AgentConnection connect(String daemon, String name, int flags, int magic,
      int version, Duration timeout, Credentials credentials) {
    if (name == null) {
      flags |= Protocol.HELLO_GENERATE_NAME;
      name = "";
    } else if (!Names.isValidPrivateName(name)) {
      throw new IllegalNameException(Names.explainPrivateName(name), 0);
    }
    DaemonAddress addr;
    try {
      addr = DaemonAddress.parse(daemon);
    } catch (IllegalArgumentException e) {
      throw new ConnectFailedException(e.getMessage(), e);
    }
    long deadline = deadline(timeout);
    SocketChannel ch = null;
    Selector rs = null;
    Selector ws = null;
    AgentConnection conn = null;
    try {
      ch = addr.isUnix() ? SocketChannel.open(StandardProtocolFamily.UNIX) : SocketChannel.open();
      ch.configureBlocking(false);
      if (!addr.isUnix()) ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
      rs = Selector.open();
      ws = Selector.open();
      SelectionKey wkey;
      if (ch.connect(addr.socketAddress())) {
        wkey = ch.register(ws, SelectionKey.OP_WRITE);
      } else {
        wkey = ch.register(ws, SelectionKey.OP_CONNECT);
        while (!ch.finishConnect()) {
          long left = remainingMillis(deadline);
          if (left == 0) {
            throw new ConnectFailedException("timed out connecting to agentd at " + addr, null);
          }
          ws.select(left);
          ws.selectedKeys().clear();
        }
        wkey.interestOps(SelectionKey.OP_WRITE);
      }
      ch.register(rs, SelectionKey.OP_READ);
      conn = new AgentConnection(ch, rs, ws, addr.toString());
      conn.positions = (flags & Protocol.HELLO_POSITIONS) != 0;
      conn.handshake(flags, magic, version, name, deadline, timeout, credentials);
      return conn;
    } catch (IOException | IllegalArgumentException e) {
      closeQuietly(ch, rs, ws);
      throw new ConnectFailedException(
          "cannot connect to agentd at " + addr + ": " + e.getMessage(), e);
    } catch (RuntimeException e) {
      closeQuietly(ch, rs, ws);
      throw e;
    }
  }

  private void handshake(int flags, int magic, int version, String name, long deadline,
      Duration timeout, Credentials credentials) throws IOException {
    byte[] helloBody;
    sendLock.lock();
    try {
      sendBuffer.clear();
      Protocol.putHello(sendBuffer, magic, version, flags, name);
      sendBuffer.flip();
      // An authentication's response covers the hello's body (after length and verb).
      helloBody = new byte[sendBuffer.remaining() - 5];
      sendBuffer.get(5, helloBody);
      writeFully(sendBuffer, null);
    } finally {
      sendLock.unlock();
    }
    receiveLock.lock();
    try {
      for (;;) {
        int verb = nextFrame();
        if (verb < 0) {
          if (!fill(deadline)) {
            if (closed) {
              throw new ConnectFailedException("agentd at " + address
                  + " closed the connection during the handshake", null);
            }
            if (timeout == null || Thread.currentThread().isInterrupted()) {
              throw new ConnectFailedException("interrupted while waiting for the welcome of"
                  + " agentd at " + address, null);
            }
            throw new ConnectFailedException("no welcome from agentd at " + address + " within "
                + timeout.toMillis() + " ms", null);
          }
          continue;
        }
        int from = frameBodyStart;
        int to = frameBodyEnd;
        if (verb == Protocol.CHALLENGE) {
          // The daemon wants to know who this is before its welcome.
          byte[] nonce = ClientAuth.decodeChallenge(rbuf, from, to);
          Credentials c = credentials != null ? credentials : Credentials.fromEnvironment();
          if (c == null) {
            throw new AuthFailedException("agentd at " + address + " asks TCP clients to "
                + "authenticate: give Credentials, or set AGENT_SECRET_FILE (and AGENT_USER)");
          }
          byte[] mac = ClientAuth.response(c.secret(), nonce, helloBody, c.user());
          sendLock.lock();
          try {
            sendBuffer.clear();
            ClientAuth.putAuth(sendBuffer, c.user(), mac);
            sendBuffer.flip();
            writeFully(sendBuffer, null);
          } finally {
            sendLock.unlock();
          }
          continue;
        }
        if (verb == Protocol.WELCOME) {
          Protocol.Welcome w = Protocol.decodeWelcome(rbuf, from, to);
          if (w.version() != version) {
            throw new VersionMismatchException("agentd at " + address + " welcomed with protocol"
                + " version " + w.version() + "; this binding speaks " + version);
          }
          privateGroup = w.privateGroup();
          daemonName = w.daemon();
          maxMessage = w.maxMessage();
          maxFrame = (int) Math.min(Integer.MAX_VALUE - 16,
              (long) w.maxMessage() + Protocol.FRAME_OVERHEAD);
          return;
        }
        if (verb == Protocol.ERROR) {
          ErrorMessage e = Protocol.decodeError(rbuf, from, to);
          String text = "agentd at " + address + " refused the connection: " + e.text();
          switch (e.code()) {
            case 4:
              throw new VersionMismatchException(text);
            case 5:
              throw new IllegalNameException(text, 5);
            case 6:
              throw new NameTakenException(text);
            case 20:
              throw new AuthFailedException(text);
            default:
              throw new RejectedException(text + " (error " + e.code() + ")", e.code());
          }
        }
        throw new ProtocolException(
            "agentd sent verb 0x" + Integer.toHexString(verb) + " before its welcome");
      }
    } finally {
      receiveLock.unlock();
    }
  }

  // ------------------------------------------------------------------------------- properties

  /** This connection's private group, {@code #name#daemon}: its address for private messages. */
  public String privateGroup() {
    return privateGroup;
  }

  /** The name of the daemon this connection is attached to. */
  public String daemonName() {
    return daemonName;
  }

  /** The largest payload the daemon accepts, in bytes. */
  public int maxMessage() {
    return maxMessage;
  }

  /** The daemon's address as connected to (a socket path or host:port). */
  public String address() {
    return address;
  }

  /** True when live data messages carry their position (asked for at connect). */
  public boolean positions() {
    return positions;
  }

  /** True once the connection is closed, by {@link #close()} or because the daemon went away. */
  public boolean isClosed() {
    return closed;
  }

  @Override
  public String toString() {
    return "AgentConnection[" + privateGroup + " at " + address + (closed ? ", closed" : "") + "]";
  }

  // ------------------------------------------------------------------------------- sending

  /**
   * Asks to join a public group. It has taken effect when this connection's own membership
   * message (reason JOIN, changed = {@link #privateGroup()}) arrives; joining a group twice
   * produces an {@link ErrorMessage} with code 8.
   *
   * @throws IllegalGroupException not a valid public group name (1..31 characters 0x21..0x7e
   *     without '#')
   * @throws ConnectionClosedException the connection is closed
   */
  public void join(String group) {
    groupRequest(Protocol.JOIN, group);
  }

  /** Asks to leave a group; the daemon answers with a self-leave membership message. */
  public void leave(String group) {
    groupRequest(Protocol.LEAVE, group);
  }

  private void groupRequest(int verb, String group) {
    if (!Names.isValidGroup(group)) throw new IllegalGroupException(Names.explainGroup(group));
    sendLock.lock();
    try {
      checkWritable();
      sendBuffer.clear();
      Protocol.putGroupRequest(sendBuffer, verb, group);
      sendBuffer.flip();
      writeFully(sendBuffer, null);
    } finally {
      sendLock.unlock();
    }
  }

  /**
   * Asks for the logged messages of a persistent group (one the daemon's {@code [persist]
   * groups} name) after position {@code after}. They arrive as {@link DataMessage}s with their
   * {@link DataMessage#position()}, oldest first, then a {@link HistoryEndMessage}; until it,
   * nothing else is delivered (what the daemon held back follows it).
   *
   * <p>With {@code join} the connection also joins the group: the history runs up to the join,
   * the connection's own view follows the end, then the live messages, with nothing missing and
   * nothing twice at the hand-over. To resume after a restart, remember the position of the
   * last message handled and join with the history after it. A group the daemon keeps no log of
   * gives an {@link ErrorMessage} with code 17 ({@link ErrorCode#NOT_PERSISTENT}) instead; a log
   * it cannot read, code 18 then an end with {@link HistoryEndMessage#failed()}.
   *
   * @param after null or {@link Position#START}: from the oldest message kept
   * @throws IllegalGroupException not a valid public group name (private groups have no log)
   * @throws ConnectionClosedException the connection is closed
   */
  public void history(String group, Position after, boolean join) {
    Position p = after == null ? Position.START : after;
    historyRequest(group, join ? Protocol.HISTORY_JOIN : 0, p.ring(), p.ordinal());
  }

  /** The whole history kept of a persistent group, without joining it. */
  public void history(String group) {
    history(group, null, false);
  }

  /**
   * {@link #history(String, Position, boolean)} from the first message the daemon delivered at
   * or after {@code since} (microsecond precision).
   *
   * @throws IllegalArgumentException since is null or before 1970
   */
  public void historySince(String group, Instant since, boolean join) {
    Objects.requireNonNull(since, "since");
    if (since.getEpochSecond() < 0) {
      throw new IllegalArgumentException("history since " + since + ": before 1970");
    }
    long micros;
    try {
      micros = Math.addExact(Math.multiplyExact(since.getEpochSecond(), 1_000_000L),
          since.getNano() / 1000);
    } catch (ArithmeticException e) {
      micros = -1; // beyond 2^63 microseconds: later than any message, read as unsigned
    }
    historyRequest(group, Protocol.HISTORY_SINCE | (join ? Protocol.HISTORY_JOIN : 0), micros, 0);
  }

  private void historyRequest(String group, int flags, long a, long b) {
    if (!Names.isValidGroup(group)) throw new IllegalGroupException(Names.explainGroup(group));
    sendLock.lock();
    try {
      checkWritable();
      sendBuffer.clear();
      Protocol.putHistory(sendBuffer, group, flags, a, b);
      sendBuffer.flip();
      writeFully(sendBuffer, null);
    } finally {
      sendLock.unlock();
    }
  }

  /** Multicasts {@code data} to one group (public or private) with message type 0. */
  public void multicast(Service service, String group, byte[] data) {
    multicast(service, List.of(checkedGroupArg(group)), (short) 0, data, false);
  }

  /** Multicasts {@code data} to one group (public or private). */
  public void multicast(Service service, String group, short msgType, byte[] data) {
    multicast(service, List.of(checkedGroupArg(group)), msgType, data, false);
  }

  /**
   * Multicasts {@code data} to 1..256 groups, public or private. Each receiver gets one copy,
   * however many of the groups it is in. The sender need not be a member.
   *
   * @param selfDiscard the sender does not receive its own copy
   * @throws IllegalServiceException service is null
   * @throws BadGroupCountException no group, or more than 256
   * @throws IllegalGroupException a group that is neither a valid public group nor a private
   *     group {@code #name#daemon}
   * @throws MessageTooLargeException data is longer than {@link #maxMessage()}
   * @throws ConnectionClosedException the connection is closed
   */
  public void multicast(Service service, Collection<String> groups, short msgType, byte[] data,
      boolean selfDiscard) {
    if (service == null) throw new IllegalServiceException("service is null");
    multicast(service.bits() | (selfDiscard ? Service.SELF_DISCARD : 0), groups, msgType, data);
  }

  /**
   * Multicast with Spread-style service flags: exactly one service bit ({@link Service#bits()}),
   * optionally {@link Service#SELF_DISCARD}.
   *
   * @throws IllegalServiceException other flags
   */
  public void multicast(int serviceFlags, Collection<String> groups, short msgType, byte[] data) {
    checkMulticast(serviceFlags, groups);
    checkPayload(data);
    sendLock.lock();
    try {
      checkWritable();
      sendBuffer.clear();
      int header = Protocol.multicastHeaderSize(groups);
      Protocol.putMulticastHeader(sendBuffer, serviceFlags, msgType, groups, data.length);
      if (header + data.length <= sendBuffer.capacity()) {
        sendBuffer.put(data);
        sendBuffer.flip();
        writeFully(sendBuffer, null);
      } else {
        sendBuffer.flip();
        writeFully(sendBuffer, ByteBuffer.wrap(data));
      }
    } finally {
      sendLock.unlock();
    }
  }

  /**
   * Multicasts each of {@code messages}, in order, to the same groups with the same service,
   * written to the daemon together (one write per {@value #SEND_BUFFER} bytes instead of one
   * per message, as the C library's {@code AGENT_MORE} does). Every message is checked before
   * any is sent: on an exception none was sent.
   *
   * @throws MessageTooLargeException a message is longer than {@link #maxMessage()}
   * @see #multicast(int, Collection, short, byte[])
   */
  public void multicastMany(Service service, Collection<String> groups, short msgType,
      List<byte[]> messages) {
    if (service == null) throw new IllegalServiceException("service is null");
    int serviceFlags = service.bits();
    checkMulticast(serviceFlags, groups);
    Objects.requireNonNull(messages, "messages");
    for (byte[] data : messages) checkPayload(data);
    int header = Protocol.multicastHeaderSize(groups);
    sendLock.lock();
    try {
      checkWritable();
      sendBuffer.clear();
      for (byte[] data : messages) {
        if (header + data.length > sendBuffer.remaining() && sendBuffer.position() > 0) {
          sendBuffer.flip();
          writeFully(sendBuffer, null);
          sendBuffer.clear();
        }
        Protocol.putMulticastHeader(sendBuffer, serviceFlags, msgType, groups, data.length);
        if (header + data.length <= sendBuffer.capacity()) {
          sendBuffer.put(data);
        } else {  // larger than the buffer: its header, then the data where it is
          sendBuffer.flip();
          writeFully(sendBuffer, ByteBuffer.wrap(data));
          sendBuffer.clear();
        }
      }
      if (sendBuffer.position() > 0) {
        sendBuffer.flip();
        writeFully(sendBuffer, null);
      }
    } finally {
      sendLock.unlock();
    }
  }

  /** {@link #multicastMany(Service, Collection, short, List)} to one group, message type 0. */
  public void multicastMany(Service service, String group, List<byte[]> messages) {
    multicastMany(service, List.of(checkedGroupArg(group)), (short) 0, messages);
  }

  private void checkMulticast(int serviceFlags, Collection<String> groups) {
    if (!Service.isValidMulticast(serviceFlags)) {
      throw new IllegalServiceException("service flags 0x" + Integer.toHexString(serviceFlags)
          + " must hold exactly one of UNRELIABLE, RELIABLE, FIFO, CAUSAL, AGREED, SAFE,"
          + " optionally with SELF_DISCARD");
    }
    Objects.requireNonNull(groups, "groups");
    if (groups.isEmpty() || groups.size() > Protocol.MAX_GROUPS) {
      throw new BadGroupCountException(
          "a multicast names 1.." + Protocol.MAX_GROUPS + " groups, not " + groups.size());
    }
    for (String g : groups) {
      if (!Names.isValidDestination(g)) throw new IllegalGroupException(Names.explainGroup(g));
    }
  }

  private void checkPayload(byte[] data) {
    Objects.requireNonNull(data, "data");
    if (data.length > maxMessage) {
      throw new MessageTooLargeException("message of " + data.length
          + " bytes is above the daemon's limit of " + maxMessage + " bytes");
    }
  }

  /** Sends {@code data} to one connection, named by its private group {@code #name#daemon}. */
  public void sendPrivate(String privateGroup, Service service, byte[] data) {
    sendPrivate(privateGroup, service, (short) 0, data);
  }

  /**
   * Sends {@code data} to one connection. Private messages are ordered with everything else.
   *
   * @throws IllegalGroupException privateGroup is not of the form {@code #name#daemon}
   */
  public void sendPrivate(String privateGroup, Service service, short msgType, byte[] data) {
    if (!Names.isPrivateGroup(privateGroup)) {
      throw new IllegalGroupException(
          (privateGroup == null ? "null" : Names.quote(privateGroup))
              + " is not a private group of the form #name#daemon");
    }
    multicast(service, List.of(privateGroup), msgType, data, false);
  }

  private static String checkedGroupArg(String group) {
    if (group == null) throw new IllegalGroupException(Names.explainGroup(null));
    return group;
  }

  private void checkWritable() {
    if (closed) throw closedException();
    if (writeBroken) throw new ConnectionClosedException("an earlier write to agentd failed");
  }

  /** Writes a (and then b, if not null) completely; the caller holds sendLock. */
  private void writeFully(ByteBuffer a, ByteBuffer b) {
    ByteBuffer[] both = b == null ? null : new ByteBuffer[] {a, b};
    boolean interrupted = false;
    try {
      for (;;) {
        long n = both == null ? channel.write(a) : channel.write(both);
        if (!a.hasRemaining() && (b == null || !b.hasRemaining())) return;
        if (n > 0) continue;
        // The socket buffer is full: the daemon applies back-pressure. Wait until writable.
        if (closed) throw closedException();
        if (Thread.interrupted()) interrupted = true; // or select() would return at once
        writeSelector.select();
        writeSelector.selectedKeys().clear();
      }
    } catch (ClosedChannelException | ClosedSelectorException e) {
      throw closedException();
    } catch (IOException e) {
      if (closed) throw closedException();
      writeBroken = true;
      throw new ConnectionClosedException(
          "cannot write to agentd at " + address + ": " + e.getMessage(), e);
    } finally {
      if (interrupted) Thread.currentThread().interrupt();
    }
  }

  // ------------------------------------------------------------------------------- receiving

  /** {@link #receive(Duration)} without a timeout: blocks until a message arrives. */
  public Message receive() {
    return receive(null);
  }

  /**
   * The next data, membership, error or history-end message, waiting up to {@code timeout}.
   *
   * @param timeout null waits forever, zero (or negative) only takes what has arrived
   * @return the message, or <b>null when nothing arrived in time</b> or the thread was
   *     interrupted (its interrupt status stays set)
   * @throws ConnectionClosedException the connection is closed: by {@link #close()}, or by the
   *     daemon once every message it sent before closing has been returned (an error message
   *     such as 14, slow client, or 15, shutting down, usually says why)
   * @throws ProtocolException the daemon sent something undecodable; the connection is closed
   * @throws IllegalStateException a listener is running on another thread
   */
  public Message receive(Duration timeout) {
    checkNotListening();
    long deadline = deadline(timeout);
    receiveLock.lock();
    try {
      for (;;) {
        if (closedByUser) throw closedException();
        int verb = nextFrame();
        if (verb >= 0) {
          Message m;
          try {
            m = Protocol.decode(verb, rbuf, frameBodyStart, frameBodyEnd);
          } catch (ProtocolException e) {
            shutdown("protocol error: " + e.getMessage(), e);
            throw e;
          }
          if (m instanceof ErrorMessage e) lastError = e;
          return m;
        }
        if (closed) throw closedException();
        if (!fill(deadline)) {
          if (closed) throw closedException();
          return null;
        }
      }
    } finally {
      receiveLock.unlock();
    }
  }

  // Bounds of the body of the frame nextFrame() returned (valid until the next fill()).
  private int frameBodyStart;
  private int frameBodyEnd;

  /**
   * The verb of the next whole frame in the buffer (its body is rbuf[frameBodyStart,
   * frameBodyEnd)), or -1 when more bytes are needed. Caller holds receiveLock.
   */
  private int nextFrame() {
    int avail = rend - rstart;
    if (avail < 4) return -1;
    byte[] a = rbuf;
    int s = rstart;
    long len = (a[s] & 0xff) | (a[s + 1] & 0xff) << 8 | (a[s + 2] & 0xff) << 16
        | (long) (a[s + 3] & 0xff) << 24;
    if (len == 0 || len > maxFrame) {
      ProtocolException e = new ProtocolException("agentd sent a frame of " + len
          + " bytes; the limit is " + maxFrame);
      shutdown(e.getMessage(), e);
      throw e;
    }
    if (avail - 4 < len) {
      int need = 4 + (int) len;
      if (need > a.length) {
        byte[] bigger = new byte[Math.max(need, (int) Math.min(Integer.MAX_VALUE - 16,
            2L * a.length))];
        System.arraycopy(a, rstart, bigger, 0, avail);
        rbuf = bigger;
        rstart = 0;
        rend = avail;
      } else if (rstart + need > a.length) {
        compact();
      }
      return -1;
    }
    frameBodyStart = s + 5;
    frameBodyEnd = s + 4 + (int) len;
    rstart = frameBodyEnd;
    return a[s + 4] & 0xff;
  }

  private void compact() {
    int avail = rend - rstart;
    if (avail > 0) System.arraycopy(rbuf, rstart, rbuf, 0, avail);
    rstart = 0;
    rend = avail;
  }

  /**
   * Reads more bytes, waiting until the deadline. True when some arrived; false on timeout,
   * interrupt, a stopListening() request, or end of stream (then {@link #closed} is set).
   * Caller holds receiveLock.
   */
  private boolean fill(long deadline) {
    if (rstart == rend) {
      rstart = rend = 0;
      if (rbuf.length > 4 * INITIAL_READ_BUFFER) rbuf = new byte[INITIAL_READ_BUFFER];
    } else if (rend == rbuf.length) {
      compact();
    }
    try {
      for (;;) {
        int n = channel.read(ByteBuffer.wrap(rbuf, rend, rbuf.length - rend));
        if (n > 0) {
          rend += n;
          return true;
        }
        if (n < 0) {
          ErrorMessage e = lastError;
          shutdown("agentd closed the connection"
              + (e == null ? "" : " after error " + e.code() + ": " + e.text()), null);
          return false;
        }
        if (Thread.currentThread().isInterrupted()) return false;
        if (stopListening && Thread.currentThread() == currentListener()) return false;
        if (deadline == FOREVER) {
          readSelector.select();
        } else {
          long left = remainingMillis(deadline);
          if (left == 0) return false;
          readSelector.select(left);
        }
        readSelector.selectedKeys().clear();
      }
    } catch (ClosedChannelException | ClosedSelectorException e) {
      if (!closed) shutdown("the connection was closed", e);
      return false;
    } catch (IOException e) {
      shutdown("reading from agentd failed: " + e.getMessage(), e);
      return false;
    }
  }

  // ------------------------------------------------------------------------------- listening

  /**
   * Starts a daemon thread that receives and calls {@code listener} for each message until the
   * connection closes ({@link AgentListener#onClosed} is then called once) or {@link
   * #stopListening()}. Meanwhile only that thread may receive.
   *
   * @return the thread, started
   * @throws IllegalStateException a listener is already running
   */
  public Thread startListening(AgentListener listener) {
    Objects.requireNonNull(listener, "listener");
    Thread t;
    synchronized (stateLock) {
      if (listenerThread != null) throw new IllegalStateException("a listener is already running");
      stopListening = false;
      t = new Thread(() -> listen(listener), "agent-listener " + privateGroup);
      t.setDaemon(true);
      listenerThread = t;
    }
    t.start();
    return t;
  }

  /**
   * Stops the listener thread without closing the connection and waits for it to finish its
   * current callback (unless called from that callback). Afterwards {@link #receive} may be
   * used again. Does nothing when no listener runs.
   */
  public void stopListening() {
    Thread t;
    synchronized (stateLock) {
      t = listenerThread;
      if (t == null) return;
      stopListening = true;
    }
    try {
      readSelector.wakeup();
    } catch (ClosedSelectorException e) {
      // closed: the listener ends by itself
    }
    if (Thread.currentThread() == t) return;
    boolean interrupted = false;
    for (;;) {
      try {
        t.join();
        break;
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) Thread.currentThread().interrupt();
  }

  private Thread currentListener() {
    synchronized (stateLock) {
      return listenerThread;
    }
  }

  private void checkNotListening() {
    Thread t = currentListener();
    if (t != null && t != Thread.currentThread()) {
      throw new IllegalStateException("a listener is running: only its thread receives");
    }
  }

  private void listen(AgentListener listener) {
    Exception cause = null;
    boolean stopped = false;
    try {
      for (;;) {
        if (stopListening) {
          stopped = true;
          return;
        }
        Message m = receive(null);
        if (m == null) {
          if (stopListening || Thread.currentThread().isInterrupted()) {
            stopped = true;
            return;
          }
          continue;
        }
        if (m instanceof DataMessage d) {
          listener.onData(d);
        } else if (m instanceof MembershipMessage v) {
          listener.onMembership(v);
        } else if (m instanceof ErrorMessage e) {
          listener.onError(e);
        } else if (m instanceof HistoryEndMessage h) {
          listener.onHistoryEnd(h);
        }
      }
    } catch (ConnectionClosedException e) {
      cause = closedByUser ? null : e;
    } catch (RuntimeException e) { // a protocol error, or a callback threw
      cause = e;
      close();
    } catch (Error e) {
      close();
      throw e;
    } finally {
      synchronized (stateLock) {
        listenerThread = null;
      }
      if (!stopped) listener.onClosed(cause);
    }
  }

  // ------------------------------------------------------------------------------- closing

  /**
   * Sends bye and closes the socket; the connection's groups see it disconnect. Every message a
   * send accepted reaches the daemon: after the bye it waits (up to {@link #DISCONNECT_WAIT};
   * deliveries that arrive meanwhile are discarded) until the daemon has read everything and
   * closed its end, over TCP as over the Unix socket. Idempotent, and safe from any thread:
   * blocked sends and receives throw {@link ConnectionClosedException}. When another thread's
   * send is stuck on a full socket the bye is skipped, and while another thread receives it
   * does not wait.
   */
  @Override
  public void close() {
    synchronized (stateLock) {
      if (closedByUser) return;
      closedByUser = true;
    }
    boolean locked = false;
    try {
      locked = !closed && sendLock.tryLock(200, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    boolean saidGoodbye = false;
    if (locked) {
      try {
        if (!writeBroken) {
          ByteBuffer bye = Protocol.newBuffer(5, false);
          Protocol.putBye(bye);
          bye.flip();
          long deadline = System.nanoTime() + DISCONNECT_WAIT.toNanos();
          while (bye.hasRemaining() && System.nanoTime() < deadline) {
            if (channel.write(bye) == 0) {
              writeSelector.select(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
              writeSelector.selectedKeys().clear();
            }
          }
          saidGoodbye = !bye.hasRemaining();
        }
      } catch (IOException | ClosedSelectorException e) {
        // the daemon is gone: nothing to say goodbye to
      } finally {
        sendLock.unlock();
      }
    }
    if (saidGoodbye && receiveLock.tryLock()) {
      try {
        drainUntilClosed();
      } finally {
        receiveLock.unlock();
      }
    }
    shutdown("the connection was closed by close()", null);
  }

  /**
   * After the goodbye: half-closes and reads (discarding) until the daemon closes its end,
   * having read everything sent before, or DISCONNECT_WAIT passes. Closing at once, with
   * deliveries unread in the socket, would make the kernel reset a TCP connection, and the
   * daemon lose what it had not read yet. Caller holds receiveLock.
   */
  private void drainUntilClosed() {
    long deadline = System.nanoTime() + DISCONNECT_WAIT.toNanos();
    ByteBuffer scratch = ByteBuffer.allocate(65536);
    try {
      channel.shutdownOutput();
      for (;;) {
        scratch.clear();
        int n = channel.read(scratch);
        if (n < 0) return; // the daemon closed: it has read everything
        if (n > 0) continue;
        long left = (deadline - System.nanoTime()) / 1_000_000;
        if (left <= 0) return;
        readSelector.select(left);
        readSelector.selectedKeys().clear();
      }
    } catch (IOException | ClosedSelectorException e) {
      // the connection failed: nothing more to wait for
    }
  }

  /** Marks the connection closed and releases the socket and selectors (wakes blocked calls). */
  private void shutdown(String reason, Exception cause) {
    synchronized (stateLock) {
      if (closed) return;
      closed = true;
      closeReason = reason;
      closeCause = cause;
    }
    closeQuietly(channel, readSelector, writeSelector);
  }

  private ConnectionClosedException closedException() {
    Exception cause;
    String reason;
    synchronized (stateLock) {
      cause = closeCause;
      reason = closeReason;
    }
    if (closedByUser) reason = "the connection was closed by close()";
    return new ConnectionClosedException(
        (privateGroup == null ? "" : privateGroup + ": ")
            + (reason == null ? "the connection is closed" : reason), cause);
  }

  private static void closeQuietly(AutoCloseable... all) {
    for (AutoCloseable c : all) {
      if (c == null) continue;
      try {
        c.close();
      } catch (Exception e) {
        // nothing more to do
      }
    }
  }

  // ------------------------------------------------------------------------------- time

  private static final long FOREVER = Long.MIN_VALUE;

  /** How long {@link #close()} waits for the daemon to read everything sent before it. */
  public static final Duration DISCONNECT_WAIT = Duration.ofSeconds(10);

  private static long deadline(Duration timeout) {
    if (timeout == null) return FOREVER;
    long now = System.nanoTime();
    if (timeout.isNegative() || timeout.isZero()) return now;
    long nanos;
    try {
      nanos = timeout.toNanos();
    } catch (ArithmeticException e) {
      return FOREVER; // beyond 292 years
    }
    return nanos > Long.MAX_VALUE / 2 ? FOREVER : now + nanos;
  }

  /** Milliseconds until the deadline, at least 1 while any time is left; 0 once it passed. */
  private static long remainingMillis(long deadline) {
    if (deadline == FOREVER) return Long.MAX_VALUE / 2;
    long left = deadline - System.nanoTime();
    if (left <= 0) return 0;
    return Math.max(1, TimeUnit.NANOSECONDS.toMillis(left + 999_999));
  }
}
