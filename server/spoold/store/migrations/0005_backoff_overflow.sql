-- spool.backoff_delay computed the uncapped delay as an interval, which overflows ("interval out of
-- range") from the 45th attempt of the default policy on: the Nack or the reaper round failed. The
-- delay is now computed in seconds as a double, capped, and only then turned into an interval.
CREATE OR REPLACE FUNCTION spool.backoff_delay(
    kind spool.backoff_kind, initial interval, max_delay interval, multiplier double precision,
    jitter boolean, attempt integer
) RETURNS interval LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN jitter THEN d * (0.5 + random() / 2) ELSE d END
    FROM (SELECT make_interval(secs => least(extract(epoch FROM max_delay)::double precision, CASE kind
        WHEN 'fixed' THEN extract(epoch FROM initial)::double precision
        WHEN 'linear' THEN extract(epoch FROM initial)::double precision * greatest(attempt, 1)
        -- 100^100 still fits a double; the exponent cap keeps any multiplier finite.
        ELSE extract(epoch FROM initial)::double precision * power(multiplier, least(greatest(attempt - 1, 0), 100))
    END)) AS d) AS capped
$$;
