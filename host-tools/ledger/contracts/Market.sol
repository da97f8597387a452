// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {OfferBytes} from "./OfferBytes.sol";

/// veilgrid's market: the PETra workflow on an EVM (docs/ledger.md). The DSO authorizes and bans
/// meters, sets prices and feeder limits, and issues energy and money assets to trading keys (P-256);
/// trading keys sign offers that any relayer submits; after gate closure anyone clears an interval as a
/// uniform-price double auction with the DSO's prices as outside option (docs/clearing.md), and anyone
/// settles it, offer by offer.
contract Market {
    enum MeterStatus { Unknown, Authorized, Banned }
    enum OfferState { None, Open, Withdrawn, Settled }
    /// Why an offer or a rescission was refused; the numbers are part of the interface (events carry them).
    enum Refusal { None, Malformed, BadSignature, Replayed, GateClosed, KeyRevoked, InsufficientAsset, InsufficientMoney, UnknownOffer, NotOpen }

    struct Prices { uint32 fromInterval; uint32 consumption; uint32 production; }
    struct FeederLimit { uint64 production; uint64 consumption; bool set; }
    struct FeederIssued { uint64 production; uint64 consumption; }
    /// A trading key's energy assets for one interval (Wh), and how much of them open offers lock.
    struct Holding { uint64 production; uint64 consumption; uint64 productionLocked; uint64 consumptionLocked; }
    struct Money { uint128 free; uint128 locked; }
    /// The fields clearing reads share the first slot, so a clearing pass loads one slot per offer.
    struct StoredOffer { uint32 wh; uint32 limitPrice; uint8 side; OfferState state; bytes32 keyId; }
    /// One grant of an issuance batch: energy assets (Wh per interval over [first, last]) and money.
    struct Grant { bytes32 keyX; bytes32 keyY; uint32 production; uint32 consumption; uint32 first; uint32 last; uint128 money; }
    /// The last offer filled on one side (in priority order) and how much of it was filled.
    struct Cut { uint32 index; uint32 limitPrice; uint32 fillWh; }
    /// A clearing result: the uniform price, the volume, and the cut on each side. Zero when nothing trades.
    struct Result { uint32 price; uint64 volumeWh; Cut ask; Cut bid; }
    struct Clearing { Result result; bool cleared; uint32 settledUpTo; }

    uint32 public constant MAX_ASSET_SPAN = 96;
    uint8 internal constant WITHDRAWN_BY_KEY = 0;
    uint8 internal constant WITHDRAWN_BY_BAN = 1;

    address public immutable dso;
    uint64 public immutable genesisTime;
    uint32 public immutable intervalSeconds;

    mapping(bytes32 => MeterStatus) public meterStatus;
    mapping(bytes32 => bool) public revokedKey;
    Prices[] public priceSchedule;
    mapping(uint32 => FeederLimit) public feederLimits;
    mapping(uint32 => mapping(uint32 => FeederIssued)) public feederIssued;
    mapping(bytes32 => mapping(uint32 => Holding)) public holdings;
    mapping(bytes32 => Money) public money;
    mapping(uint32 => StoredOffer[]) internal offersOf;
    /// Offer digest → (interval << 32 | index + 1); non-zero means the digest was seen once, for ever.
    mapping(bytes32 => uint64) public offerRef;
    mapping(uint32 => Clearing) internal clearings;
    /// The relay directory on record (anchorDirectory).
    uint32 public directoryEpoch;
    bytes32 public directoryHeadHash;

    event MeterAuthorized(bytes32 indexed meterHash);
    event MeterBanned(bytes32 indexed meterHash);
    event KeyRevoked(bytes32 indexed keyId);
    event PricesSet(uint32 fromInterval, uint32 consumption, uint32 production);
    event FeederLimitSet(uint32 indexed feeder, uint64 production, uint64 consumption);
    event AssetIssued(bytes32 indexed keyId, uint32 indexed feeder, uint32 production, uint32 consumption, uint32 first, uint32 last, uint128 money);
    event BatchIssued(uint32 indexed feeder, uint32 grants);
    event OfferAccepted(uint32 indexed interval, uint32 index, bytes32 indexed digest, bytes32 indexed keyId, uint8 side, uint32 wh, uint32 limitPrice);
    event OfferRejected(bytes32 indexed digest, Refusal reason);
    event OfferWithdrawn(uint32 indexed interval, uint32 index, bytes32 indexed digest, uint8 by);
    event Cleared(uint32 indexed interval, uint32 price, uint64 volumeWh, uint32 offers);
    event Settled(uint32 indexed interval, uint32 index, bytes32 indexed keyId, uint32 fillWh, uint128 paid, uint128 received);
    event IntervalSettled(uint32 indexed interval);
    event DirectoryAnchored(uint32 indexed epoch, bytes32 headHash);

    error NotDso();
    error OfferRefused(Refusal reason);
    error PricesInPast(uint32 fromInterval, uint32 currentInterval);
    error PricesInverted(uint32 consumption, uint32 production);
    error NoPrices(uint32 interval);
    error UnknownFeeder(uint32 feeder);
    error FeederLimitExceeded(uint32 feeder, uint32 interval);
    error BadAssetSpan(uint32 first, uint32 last);
    error IssuedTooLate(uint32 first);
    error GrantToRevokedKey(bytes32 keyId);
    error GateOpen(uint32 interval);
    error AlreadyCleared(uint32 interval);
    error NotCleared(uint32 interval);
    error WrongClearing(string what);
    error CancelNotAllowed(bytes32 digest);
    error LengthMismatch();
    error StaleDirectory(uint32 epoch, uint32 latest);

    modifier onlyDso() {
        if (msg.sender != dso) revert NotDso();
        _;
    }

    constructor(uint32 intervalSeconds_, uint64 genesisTime_) {
        dso = msg.sender;
        intervalSeconds = intervalSeconds_;
        genesisTime = genesisTime_;
    }

    // ---- time ----

    /// The interval running now; interval d runs from genesis + d·Δ, and that instant is its gate closure.
    function currentInterval() public view returns (uint32) {
        if (block.timestamp < genesisTime) return 0;
        return uint32((block.timestamp - genesisTime) / intervalSeconds);
    }

    function gateClosure(uint32 interval) public view returns (uint256) {
        return uint256(genesisTime) + uint256(interval) * intervalSeconds;
    }

    // ---- regulatory transactions (DSO) ----

    function authorize(bytes32[] calldata meterHashes) external onlyDso {
        for (uint256 i = 0; i < meterHashes.length; i++) {
            meterStatus[meterHashes[i]] = MeterStatus.Authorized;
            emit MeterAuthorized(meterHashes[i]);
        }
    }

    /// Bans a meter: its trading keys (which only the DSO can name) can no longer offer or be issued to,
    /// and their listed open offers are withdrawn before clearing, returning their assets.
    function ban(bytes32 meterHash, bytes32[] calldata keyIds, bytes32[] calldata openOffers) external onlyDso {
        meterStatus[meterHash] = MeterStatus.Banned;
        emit MeterBanned(meterHash);
        for (uint256 i = 0; i < keyIds.length; i++) {
            revokedKey[keyIds[i]] = true;
            emit KeyRevoked(keyIds[i]);
        }
        for (uint256 i = 0; i < openOffers.length; i++) {
            (uint32 interval, uint32 index, bool found) = _locate(openOffers[i]);
            if (!found) revert CancelNotAllowed(openOffers[i]);
            StoredOffer storage o = offersOf[interval][index];
            if (o.state != OfferState.Open || !revokedKey[o.keyId] || clearings[interval].cleared) revert CancelNotAllowed(openOffers[i]);
            _withdraw(interval, index, o, openOffers[i], WITHDRAWN_BY_BAN);
        }
    }

    /// Prices (money units per Wh) in force from an interval whose gate is still open, until the next entry.
    function setPrices(uint32 fromInterval, uint32 consumption, uint32 production) external onlyDso {
        uint32 current = currentInterval();
        if (fromInterval <= current) revert PricesInPast(fromInterval, current);
        if (production > consumption) revert PricesInverted(consumption, production);
        uint256 n = priceSchedule.length;
        if (n > 0 && priceSchedule[n - 1].fromInterval >= fromInterval) {
            // A later regulatory transaction overrides what it overlaps (PETra): drop entries not yet in force.
            while (n > 0 && priceSchedule[n - 1].fromInterval >= fromInterval) {
                priceSchedule.pop();
                n--;
            }
        }
        priceSchedule.push(Prices(fromInterval, consumption, production));
        emit PricesSet(fromInterval, consumption, production);
    }

    /// Anchors the mixnet's relay directory: the SHA-256 of the head the DSO signed (docs/relay-directory.md),
    /// so anyone can check that the directory a meter was given is the one on record, and that the DSO gave
    /// every meter the same one. Epochs only increase.
    function anchorDirectory(uint32 epoch, bytes32 headHash) external onlyDso {
        if (epoch <= directoryEpoch) revert StaleDirectory(epoch, directoryEpoch);
        directoryEpoch = epoch;
        directoryHeadHash = headHash;
        emit DirectoryAnchored(epoch, headHash);
    }

    function setFeederLimit(uint32 feeder, uint64 production, uint64 consumption) external onlyDso {
        feederLimits[feeder] = FeederLimit(production, consumption, true);
        emit FeederLimitSet(feeder, production, consumption);
    }

    /// The prices in force at an interval: the last schedule entry starting at or before it.
    function pricesAt(uint32 interval) public view returns (uint32 consumption, uint32 production) {
        for (uint256 i = priceSchedule.length; i > 0; i--) {
            Prices storage p = priceSchedule[i - 1];
            if (p.fromInterval <= interval) return (p.consumption, p.production);
        }
        revert NoPrices(interval);
    }

    // ---- issuance (DSO) ----

    /// Issues one batch of grants to trading keys of one feeder; the feeder's per-interval limits bound
    /// the sum of everything issued to it, so an over-issuing DSO key cannot endanger the feeder either.
    function issue(uint32 feeder, Grant[] calldata grants) external onlyDso {
        FeederLimit memory limit = feederLimits[feeder];
        if (!limit.set) revert UnknownFeeder(feeder);
        for (uint256 i = 0; i < grants.length; i++) {
            Grant calldata g = grants[i];
            if (g.last < g.first || g.last - g.first >= MAX_ASSET_SPAN) revert BadAssetSpan(g.first, g.last);
            if (block.timestamp >= gateClosure(g.first)) revert IssuedTooLate(g.first);
            bytes32 keyId = keccak256(abi.encodePacked(g.keyX, g.keyY));
            if (revokedKey[keyId]) revert GrantToRevokedKey(keyId);
            if (g.production > 0 || g.consumption > 0) {
                for (uint32 t = g.first; t <= g.last; t++) {
                    FeederIssued storage f = feederIssued[feeder][t];
                    f.production += g.production;
                    f.consumption += g.consumption;
                    if (f.production > limit.production || f.consumption > limit.consumption) revert FeederLimitExceeded(feeder, t);
                    Holding storage h = holdings[keyId][t];
                    h.production += g.production;
                    h.consumption += g.consumption;
                }
            }
            if (g.money > 0) money[keyId].free += g.money;
            emit AssetIssued(keyId, feeder, g.production, g.consumption, g.first, g.last, g.money);
        }
        emit BatchIssued(feeder, uint32(grants.length));
    }

    // ---- offers ----

    /// Submits one signed offer; reverts with the reason when it is refused.
    function submitOffer(bytes calldata offer, bytes calldata signature) external {
        Refusal r = _accept(offer, signature);
        if (r != Refusal.None) revert OfferRefused(r);
    }

    /// Submits many signed offers; a refused one is reported by OfferRejected and the rest go on, so one
    /// bad offer cannot make a relayer's whole batch fail.
    function submitOffers(bytes[] calldata offers, bytes[] calldata signatures) external {
        if (offers.length != signatures.length) revert LengthMismatch();
        for (uint256 i = 0; i < offers.length; i++) {
            Refusal r = _accept(offers[i], signatures[i]);
            if (r != Refusal.None) emit OfferRejected(sha256(offers[i]), r);
        }
    }

    /// Withdraws an open offer before gate closure, on a rescission signed by the offer's trading key.
    function rescind(bytes calldata rescission, bytes calldata signature) external {
        (bool ok, bytes32 digest, bytes32 x, bytes32 y) = OfferBytes.parseRescind(rescission);
        if (!ok) revert OfferRefused(Refusal.Malformed);
        (uint32 interval, uint32 index, bool found) = _locate(digest);
        if (!found) revert OfferRefused(Refusal.UnknownOffer);
        StoredOffer storage o = offersOf[interval][index];
        if (o.keyId != keccak256(abi.encodePacked(x, y))) revert OfferRefused(Refusal.BadSignature);
        if (!OfferBytes.verify(sha256(rescission), signature, x, y)) revert OfferRefused(Refusal.BadSignature);
        if (o.state != OfferState.Open) revert OfferRefused(Refusal.NotOpen);
        if (block.timestamp >= gateClosure(interval)) revert OfferRefused(Refusal.GateClosed);
        _withdraw(interval, index, o, digest, WITHDRAWN_BY_KEY);
    }

    function offerCount(uint32 interval) external view returns (uint256) {
        return offersOf[interval].length;
    }

    function offerAt(uint32 interval, uint32 index) external view returns (StoredOffer memory) {
        return offersOf[interval][index];
    }

    function _accept(bytes calldata offer, bytes calldata signature) internal returns (Refusal) {
        (bool ok, OfferBytes.Offer memory p) = OfferBytes.parseOffer(offer);
        if (!ok) return Refusal.Malformed;
        bytes32 digest = sha256(offer);
        if (offerRef[digest] != 0) return Refusal.Replayed;
        if (block.timestamp >= gateClosure(p.interval)) return Refusal.GateClosed;
        if (!OfferBytes.verify(digest, signature, p.keyX, p.keyY)) return Refusal.BadSignature;
        bytes32 keyId = keccak256(abi.encodePacked(p.keyX, p.keyY));
        if (revokedKey[keyId]) return Refusal.KeyRevoked;
        Holding storage h = holdings[keyId][p.interval];
        if (p.side == OfferBytes.ASK) {
            if (h.production - h.productionLocked < p.wh) return Refusal.InsufficientAsset;
            h.productionLocked += p.wh;
        } else {
            if (h.consumption - h.consumptionLocked < p.wh) return Refusal.InsufficientAsset;
            uint128 cost = uint128(p.wh) * p.limitPrice;
            Money storage m = money[keyId];
            if (m.free < cost) return Refusal.InsufficientMoney;
            h.consumptionLocked += p.wh;
            m.free -= cost;
            m.locked += cost;
        }
        StoredOffer[] storage book = offersOf[p.interval];
        uint32 index = uint32(book.length);
        book.push(StoredOffer(p.wh, p.limitPrice, p.side, OfferState.Open, keyId));
        offerRef[digest] = (uint64(p.interval) << 32) | (uint64(index) + 1);
        emit OfferAccepted(p.interval, index, digest, keyId, p.side, p.wh, p.limitPrice);
        return Refusal.None;
    }

    function _locate(bytes32 digest) internal view returns (uint32 interval, uint32 index, bool found) {
        uint64 ref = offerRef[digest];
        if (ref == 0) return (0, 0, false);
        return (uint32(ref >> 32), uint32(ref & 0xffffffff) - 1, true);
    }

    function _withdraw(uint32 interval, uint32 index, StoredOffer storage o, bytes32 digest, uint8 by) internal {
        o.state = OfferState.Withdrawn;
        _unlock(o.keyId, interval, o);
        emit OfferWithdrawn(interval, index, digest, by);
    }

    function _unlock(bytes32 keyId, uint32 interval, StoredOffer storage o) internal {
        Holding storage h = holdings[keyId][interval];
        if (o.side == OfferBytes.ASK) {
            h.productionLocked -= o.wh;
        } else {
            h.consumptionLocked -= o.wh;
            uint128 cost = uint128(o.wh) * o.limitPrice;
            Money storage m = money[keyId];
            m.locked -= cost;
            m.free += cost;
        }
    }

    // ---- clearing ----

    /// The clearing result of an interval computed on chain (docs/clearing.md gives the rule): asks by
    /// (limit, index) ascending, bids by (limit descending, index), matched greedily while the ask's
    /// limit is at most the bid's; the price is the mean of the last matched pair's limits, clamped to the
    /// DSO's prices. Anyone can call it to recompute or to propose a result to `clear`.
    function computeClearing(uint32 interval) public view returns (Result memory r) {
        (uint32 pc, uint32 pp) = pricesAt(interval);
        StoredOffer[] storage book = offersOf[interval];
        uint256 n = book.length;
        uint256[] memory asks = new uint256[](n);
        uint256[] memory bids = new uint256[](n);
        uint256 na;
        uint256 nb;
        for (uint256 k = 0; k < n; k++) {
            StoredOffer storage o = book[k];
            if (o.state != OfferState.Open) continue;
            if (o.side == OfferBytes.ASK) {
                if (o.limitPrice <= pc) asks[na++] = (uint256(o.limitPrice) << 64) | (k << 32) | o.wh;
            } else if (o.limitPrice >= pp) {
                bids[nb++] = (uint256(type(uint32).max - o.limitPrice) << 64) | (k << 32) | o.wh;
            }
        }
        _sort(asks, 0, int256(na) - 1);
        _sort(bids, 0, int256(nb) - 1);
        uint256 i;
        uint256 j;
        uint32 filledA;
        uint32 filledB;
        while (i < na && j < nb) {
            uint32 aLimit = uint32(asks[i] >> 64);
            uint32 bLimit = type(uint32).max - uint32(bids[j] >> 64);
            if (aLimit > bLimit) break;
            uint32 aWh = uint32(asks[i]);
            uint32 bWh = uint32(bids[j]);
            uint32 q = aWh - filledA < bWh - filledB ? aWh - filledA : bWh - filledB;
            filledA += q;
            filledB += q;
            r.volumeWh += q;
            r.ask = Cut(uint32(asks[i] >> 32), aLimit, filledA);
            r.bid = Cut(uint32(bids[j] >> 32), bLimit, filledB);
            if (filledA == aWh) { i++; filledA = 0; }
            if (filledB == bWh) { j++; filledB = 0; }
        }
        if (r.volumeWh > 0) r.price = _clearingPrice(r.ask.limitPrice, r.bid.limitPrice, pc, pp);
    }

    /// Clears an interval by computing the result on chain (cost grows with n log n: docs/clearing.md).
    function clearByComputing(uint32 interval) external {
        _requireClearable(interval);
        _record(interval, computeClearing(interval));
    }

    /// Clears an interval with a proposed result, which is accepted only if it is the one
    /// `computeClearing` gives: one pass over the book, in any order, checks it (docs/clearing.md).
    function clear(uint32 interval, Result calldata proposed) external {
        _requireClearable(interval);
        (uint32 pc, uint32 pp) = pricesAt(interval);
        Result memory r = proposed;
        if (r.volumeWh == 0) {
            if (r.price != 0 || r.ask.index != 0 || r.ask.limitPrice != 0 || r.ask.fillWh != 0 || r.bid.index != 0 || r.bid.limitPrice != 0 || r.bid.fillWh != 0) {
                revert WrongClearing("a result without volume must be all zero");
            }
        }
        StoredOffer[] storage book = offersOf[interval];
        uint256 n = book.length;
        uint256 sumAsk;
        uint256 sumBid;
        bool sawAskCut;
        bool sawBidCut;
        uint256 minRemainingAsk = type(uint256).max;
        uint256 maxRemainingBid;
        bool anyRemainingBid;
        for (uint256 k = 0; k < n; k++) {
            StoredOffer storage o = book[k];
            if (o.state != OfferState.Open) continue;
            (uint32 wh, uint32 limitPrice, uint8 side) = (o.wh, o.limitPrice, o.side);
            if (side == OfferBytes.ASK ? limitPrice > pc : limitPrice < pp) continue;
            Cut memory cut = side == OfferBytes.ASK ? r.ask : r.bid;
            uint32 fill = _fill(r.volumeWh, side, uint32(k), wh, limitPrice, cut);
            if (r.volumeWh > 0 && k == cut.index) {
                if (cut.limitPrice != limitPrice || cut.fillWh == 0 || cut.fillWh > wh) revert WrongClearing("cut does not match its offer");
                if (side == OfferBytes.ASK) sawAskCut = true; else sawBidCut = true;
            }
            if (side == OfferBytes.ASK) {
                sumAsk += fill;
                if (fill < wh && limitPrice < minRemainingAsk) minRemainingAsk = limitPrice;
            } else {
                sumBid += fill;
                if (fill < wh && limitPrice >= maxRemainingBid) { maxRemainingBid = limitPrice; anyRemainingBid = true; }
            }
        }
        if (sumAsk != r.volumeWh || sumBid != r.volumeWh) revert WrongClearing("fills do not add up to the volume");
        if (r.volumeWh > 0 && (!sawAskCut || !sawBidCut)) revert WrongClearing("a cut is not an open offer on its side");
        if (anyRemainingBid && minRemainingAsk <= maxRemainingBid) revert WrongClearing("remaining offers still cross");
        if (r.volumeWh > 0) {
            if (r.ask.limitPrice > r.bid.limitPrice) revert WrongClearing("the cuts do not cross");
            if (r.price != _clearingPrice(r.ask.limitPrice, r.bid.limitPrice, pc, pp)) revert WrongClearing("wrong price");
        }
        _record(interval, r);
    }

    function clearingOf(uint32 interval) external view returns (Clearing memory) {
        return clearings[interval];
    }

    /// Settles up to maxOffers more offers of a cleared interval, in book order: each filled offer pays or
    /// is paid at the uniform price and swaps energy assets as in PETra (the seller's production asset
    /// for the buyer's consumption asset); what was locked and not filled returns to its key.
    function settle(uint32 interval, uint32 maxOffers) external {
        Clearing storage c = clearings[interval];
        if (!c.cleared) revert NotCleared(interval);
        (uint32 pc, uint32 pp) = pricesAt(interval);
        Result memory r = c.result;
        StoredOffer[] storage book = offersOf[interval];
        uint256 n = book.length;
        uint256 from = c.settledUpTo;
        uint256 to = from + maxOffers < n ? from + maxOffers : n;
        for (uint256 k = from; k < to; k++) {
            StoredOffer storage o = book[k];
            if (o.state != OfferState.Open) continue;
            bool eligible = o.side == OfferBytes.ASK ? o.limitPrice <= pc : o.limitPrice >= pp;
            uint32 fill = eligible ? _fill(r.volumeWh, o.side, uint32(k), o.wh, o.limitPrice, o.side == OfferBytes.ASK ? r.ask : r.bid) : 0;
            _settleOne(interval, uint32(k), o, fill, r.price);
        }
        c.settledUpTo = uint32(to);
        if (to == n && from < n) emit IntervalSettled(interval);
    }

    function _settleOne(uint32 interval, uint32 index, StoredOffer storage o, uint32 fill, uint32 price) internal {
        bytes32 keyId = o.keyId;
        _unlock(keyId, interval, o);
        o.state = OfferState.Settled;
        uint128 value = uint128(fill) * price;
        Holding storage h = holdings[keyId][interval];
        Money storage m = money[keyId];
        if (o.side == OfferBytes.ASK) {
            h.production -= fill;
            h.consumption += fill;
            m.free += value;
            emit Settled(interval, index, keyId, fill, 0, value);
        } else {
            h.consumption -= fill;
            h.production += fill;
            m.free -= value;
            emit Settled(interval, index, keyId, fill, value, 0);
        }
    }

    /// An eligible open offer's fill under a result: offers before the cut in priority order are filled
    /// whole, the cut by its fill, later ones not at all.
    function _fill(uint64 volumeWh, uint8 side, uint32 index, uint32 wh, uint32 limitPrice, Cut memory cut) internal pure returns (uint32) {
        if (volumeWh == 0) return 0;
        if (index == cut.index) return cut.fillWh;
        bool before = side == OfferBytes.ASK
            ? (limitPrice < cut.limitPrice || (limitPrice == cut.limitPrice && index < cut.index))
            : (limitPrice > cut.limitPrice || (limitPrice == cut.limitPrice && index < cut.index));
        return before ? wh : 0;
    }

    function _clearingPrice(uint32 askLimit, uint32 bidLimit, uint32 pc, uint32 pp) internal pure returns (uint32) {
        uint32 mid = uint32((uint64(askLimit) + bidLimit) / 2);
        if (mid < pp) return pp;
        if (mid > pc) return pc;
        return mid;
    }

    function _requireClearable(uint32 interval) internal view {
        if (block.timestamp < gateClosure(interval)) revert GateOpen(interval);
        if (clearings[interval].cleared) revert AlreadyCleared(interval);
    }

    function _record(uint32 interval, Result memory r) internal {
        Clearing storage c = clearings[interval];
        c.result = r;
        c.cleared = true;
        uint256 n = offersOf[interval].length;
        emit Cleared(interval, r.price, r.volumeWh, uint32(n));
        // An empty book has nothing to settle: say so now, so watchers need not call settle to learn it.
        if (n == 0) emit IntervalSettled(interval);
    }

    /// In-place quicksort of packed keys (ascending), used only by computeClearing.
    function _sort(uint256[] memory a, int256 lo, int256 hi) internal pure {
        while (lo < hi) {
            uint256 pivot = a[uint256(lo + (hi - lo) / 2)];
            int256 i = lo;
            int256 j = hi;
            while (i <= j) {
                while (a[uint256(i)] < pivot) i++;
                while (a[uint256(j)] > pivot) j--;
                if (i <= j) {
                    (a[uint256(i)], a[uint256(j)]) = (a[uint256(j)], a[uint256(i)]);
                    i++;
                    j--;
                }
            }
            // Recurse into the smaller side, loop on the larger, so the depth stays logarithmic.
            if (j - lo < hi - i) { _sort(a, lo, j); lo = i; } else { _sort(a, i, hi); hi = j; }
        }
    }
}
