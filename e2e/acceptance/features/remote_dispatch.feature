Feature: Remote dispatch
  A user invokes a behavior of any node of the network through their own
  node, naming the target by peer ID or DID, or broadcasts it to a topic
  and collects the reply of every node that listens.

  Background:
    Given the nodes alice, bob and carol are running and connected

  Scenario: Invoke a node by its peer ID
    When alice runs `dms invoke /public/hello --to <bob.peer>`
    Then the command succeeds
    And the output contains "<bob.peer>"

  Scenario: Invoke a node by its DID
    When alice runs `dms invoke /public/hello --to <carol.did>`
    Then the command succeeds
    And the output contains "<carol.peer>"

  Scenario: A broadcast reaches every node listening on the topic
    When alice broadcasts "/public/hello" on the topic "hello"
    Then replies come from bob and carol

  Scenario: A user the remote node trusts invokes its commands
    Given carol trusts alice's user for "/dms/node/peers"
    When alice runs `dms invoke /dms/node/peers/list --to <carol.peer>`
    Then the command succeeds
    And the output contains "<bob.peer>"

  Scenario: A user holding a delegation invokes a node that trusts its root
    Given carol trusts bob's user for "/dms/node/peers"
    And bob has granted alice's user "/dms/node/peers" in "peers.tok"
    When alice runs `dms invoke /dms/node/peers/list --to <carol.peer> --token peers.tok`
    Then the command succeeds

  Scenario: A node nobody can reach is reported unreachable within the timeout
    When alice runs `dms invoke /public/hello --to 12D3KooWBmwkafWE2fqfzS96VJhqTxwxQbjJPNYgNGfsCpdHtgD5 --timeout 5s`
    Then it is refused with "unreachable"

  Scenario: A one-way message returns without waiting for a reply
    When alice runs `dms invoke /public/hello --to <bob.peer> --send`
    Then the command succeeds
    And the output is empty
