Feature: Peer-to-peer network
  Nodes reach each other over libp2p: by a full address, or through a
  bootstrap node and the DHT; each node shows its identity and addresses
  and measures the round trip to a peer.

  Scenario: A node shows its identity and addresses
    Given the node alice is running
    When alice runs `dms -o json peers self`
    Then the command succeeds
    And the output contains "<alice.peer>"
    And the output contains "<alice.did>"
    And the output contains "/p2p/<alice.peer>"

  Scenario: Two nodes connect by address and list each other
    Given the nodes alice and bob are running
    When alice runs `dms peers connect <bob.addr>`
    Then the command succeeds
    And alice and bob list each other as connected within 10 seconds

  Scenario: A node given only a bootstrap address discovers the others
    Given the node carol is running
    And the nodes erin and frank are running with carol as their bootstrap node
    Then erin and frank list each other as connected within 30 seconds

  Scenario: A node measures the round trip to a peer
    Given the nodes alice and bob are running and connected
    When alice runs `dms peers ping <bob.peer>`
    Then the command succeeds
    And the output contains " ms"

  Scenario: A malformed address is refused with a clear error
    Given the node alice is running
    When alice runs `dms peers connect not-an-address`
    Then it is refused with "want a multiaddr ending in /p2p/<peer ID>"

  Scenario: An address nobody answers on is refused
    Given the node alice is running
    When alice runs `dms peers connect /ip4/127.0.0.1/tcp/1/p2p/12D3KooWBmwkafWE2fqfzS96VJhqTxwxQbjJPNYgNGfsCpdHtgD5`
    Then it is refused with "failed to dial"
